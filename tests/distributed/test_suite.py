"""The default suite's share of the multi-process tests: run inside a private network namespace.

Two-process training (success, world_size, loopback-only sockets) and cancel + resume, on
the tiny model. The rest of tests/distributed (start-up cancel, same-global-batch parity,
the default model, Ray) runs in CI's separate pass: python tests/netns.py -m "ray or distributed".
"""

from __future__ import annotations

import pytest

from tests import netns

DEFAULT_SUITE = "test_two_processes_train_together_and_listen_on_loopback_only or test_cancel_resume_and_a_changed_world_size"


@pytest.mark.skipif(netns.inside(), reason="already inside the namespace: the tests themselves run")
@pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))
def test_two_process_training_in_a_private_network_namespace() -> None:
    done = netns.run_pytest(["-q", "-x", "-p", "no:cacheprovider", "tests/distributed/test_local.py", "-k", DEFAULT_SUITE], timeout=900)
    assert done.returncode == 0 and " 2 passed" in done.stdout, (done.stdout + done.stderr)[-6000:]
