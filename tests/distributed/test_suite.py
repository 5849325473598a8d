"""The default suite's share of the multi-process tests: run inside a private network namespace.

Two-process training (success, world_size, loopback-only sockets) and cancel + resume, on
the tiny model (tests/distributed/test_local.py). The rest (start-up cancel, same-global-batch
parity, the default model, Ray) runs in CI's separate pass:
    python tests/netns.py -m "ray or distributed" --ignore tests/distributed/test_local.py
"""

from __future__ import annotations

import re

import pytest

from tests import netns


@pytest.mark.skipif(netns.inside(), reason="already inside the namespace: the tests themselves run")
@pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))
def test_two_process_training_in_a_private_network_namespace() -> None:
    done = netns.run_pytest(["-q", "-x", "-p", "no:cacheprovider", "tests/distributed/test_local.py"], timeout=900)
    assert done.returncode == 0 and re.search(r"\b2 passed", done.stdout), (done.stdout + done.stderr)[-6000:]
