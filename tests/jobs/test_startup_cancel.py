"""Cancelling a real training process during its start-up ends `cancelled`, never failed/killed."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from nocodetune.jobs.service import JobService
from nocodetune.records.events import read_events
from nocodetune.records.runs import list_runs
from tests.jobs.conftest import wait_for
from tests.training.conftest import make_job, prompt_completion_rows


@pytest.fixture
def real_job(ws, tiny_model_dir):
    def make(name: str) -> str:
        make_job(ws.jobs, name, prompt_completion_rows(), tiny_model_dir, config={"training": {"max_steps": 200}})
        return name

    return make


def _ended_cancelled(ws, name: str) -> None:
    service = JobService(ws)
    job = service.get(name)
    assert (job.status, job.error, job.error_kind) == ("cancelled", None, None)
    (run,) = list_runs(ws.job(name))
    assert run.status == "cancelled" and run.error is None
    events, _ = read_events(ws.job(name).events)
    assert not [e for e in events if e.type == "failed"]
    assert not (ws.job(name).logs / "stop.json").exists()  # the request was consumed


@pytest.mark.parametrize("delay", [0.0, 0.4, 1.0])
def test_cancel_from_another_process_within_the_first_second(ws, real_job, delay):
    name = real_job(f"early{int(delay * 10)}")
    env = dict(os.environ, NOCODETUNE_WORKSPACE=str(ws.root))
    cli = [sys.executable, "-m", "nocodetune", "job"]
    started = subprocess.run([*cli, "run", name, "--detach"], env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    time.sleep(delay)
    t = time.monotonic()
    cancelled = subprocess.run([*cli, "cancel", name], env=env, capture_output=True, text=True, timeout=120)
    assert cancelled.returncode == 0, cancelled.stdout + cancelled.stderr
    assert "is cancelled" in " ".join(cancelled.stdout.split())
    assert time.monotonic() - t < 60  # stopped by the request, not by the grace-period kill
    _ended_cancelled(ws, name)


def test_cancel_by_the_service_that_started_it(ws, real_job):
    name = real_job("early_api")
    service = JobService(ws, poll_s=0.05, cancel_grace_s=30)
    service.start()
    try:
        service.submit(name)
        wait_for(lambda: service.get(name).status == "running", timeout=30)
        time.sleep(0.2)
        service.cancel(name)
        wait_for(lambda: service.get(name).status != "running", timeout=60)
    finally:
        service.stop()
    _ended_cancelled(ws, name)
