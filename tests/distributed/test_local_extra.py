"""More two-process checks on the tiny model (CI's distributed pass; tests/distributed/test_local.py runs in the default suite)."""

from __future__ import annotations

import json
import time

import pytest

from tests.distributed.conftest import events
from tests.distributed.test_local import TWO, _service
from tests.jobs.conftest import wait_for

pytestmark = pytest.mark.distributed


def test_same_global_batch_gives_the_same_training(ws, real_job):
    """1 process × 8 examples and 2 processes × 4 see the same batches: same tokens, same first loss, eval loss within 2%."""
    common = {"max_steps": 16, "learning_rate": 5e-3, "eval_split": 0.33, "group_by_length": False, "logging_steps": 1, "save_steps": 100}
    output = {"num_samples": 0}
    one = real_job("solo", {"training": {**common, "per_device_train_batch_size": 8}, "output": output}, rows=48)
    two = real_job("duo", {**TWO, "training": {**common, "per_device_train_batch_size": 4}, "output": output}, rows=48)
    service = _service(ws)
    try:
        service.submit(one)
        service.submit(two)
        wait_for(lambda: all(service.get(n).status in ("succeeded", "failed") for n in (one, two)), timeout=600)
    finally:
        service.stop()
    solo, duo = (json.loads(ws.job(n).metrics_json.read_text()) for n in (one, two))
    assert (solo["world_size"], duo["world_size"]) == (1, 2)
    assert solo["tokens_seen"] == duo["tokens_seen"]  # 32 rows = 4 global batches of 8: the same examples
    first = lambda n: events(ws, n, "log")[0]["loss"]  # noqa: E731
    assert first(two) == pytest.approx(first(one), rel=1e-4)
    initial = events(ws, one, "eval")[0]["eval_loss"]
    assert solo["eval_loss"] < initial and duo["eval_loss"] < initial
    assert duo["eval_loss"] == pytest.approx(solo["eval_loss"], rel=0.02)


def test_cancel_during_start_up_ends_cancelled(ws, real_job):
    name = real_job("quick", TWO)
    service = _service(ws)
    try:
        service.submit(name)
        wait_for(lambda: service.get(name).status == "running", timeout=30)
        time.sleep(0.5)
        service.cancel(name)
        wait_for(lambda: service.get(name).status != "running", timeout=120)
        job = service.get(name)
        assert (job.status, job.error) == ("cancelled", None)
    finally:
        service.stop()
    assert not events(ws, name, "failed")
