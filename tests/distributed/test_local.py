"""Two training processes on one machine (torchrun, gloo on CPU), through the job service, on the tiny model."""

from __future__ import annotations

import json
import time

import pytest

from nocodetune.config.validate import preflight
from nocodetune.jobs.service import JobService
from nocodetune.records.checkpoints import checkpoint_world_size, latest_checkpoint
from nocodetune.records.job import read_resolved
from nocodetune.records.runs import list_runs
from tests.distributed.conftest import events, is_loopback, listening, process_tree, wait_event
from tests.jobs.conftest import wait_for

pytestmark = pytest.mark.distributed

TWO = {"resources": {"num_processes": 2}}


def _service(ws) -> JobService:
    service = JobService(ws, poll_s=0.1, cancel_grace_s=60)
    service.start()
    return service


def _set_processes(ws, name: str, n: int) -> None:
    """Change the resolved world size (what `num_processes: auto` does on a machine with another GPU count)."""
    resolved = read_resolved(ws.job(name))
    resolved.config.resources.num_processes = n
    resolved.write(ws.job(name).resolved_json)


def test_two_processes_train_together_and_listen_on_loopback_only(ws, real_job):
    name = real_job("pair", {**TWO, "training": {"max_steps": 12, "per_device_train_batch_size": 2, "logging_steps": 2, "save_steps": 6}})
    service = _service(ws)
    seen: dict[tuple[str, int], int] = {}
    try:
        service.submit(name)
        wait_for(lambda: service.get(name).status != "queued", timeout=30)
        (run,) = list_runs(ws.job(name))
        while service.get(name).status == "running":
            pids = {p.pid for p in process_tree(run.pid)}
            for address, port, pid in listening(pids):
                seen[(address, port)] = pid
            time.sleep(0.2)
        assert service.get(name).status == "succeeded", service.get(name).error
    finally:
        service.stop()
    assert len(seen) >= 3, seen  # the rendezvous store and each rank's gloo listener
    assert all(is_loopback(address) for address, _ in seen), seen

    started = wait_event(ws, name, "started")
    assert started["world_size"] == 2
    workers = started["workers"]
    assert [w["rank"] for w in workers] == [0, 1] and len({w["pid"] for w in workers}) == 2
    assert len(events(ws, name, "started")) == 1 and len(events(ws, name, "finished")) == 1  # rank 0 alone reports
    metrics = json.loads(ws.job(name).metrics_json.read_text())
    assert metrics["world_size"] == 2 and metrics["global_step"] == 12 and metrics["tokens_per_second"] > 0
    assert (ws.job(name).adapter_dir / "adapter_model.safetensors").is_file()
    (run,) = list_runs(ws.job(name))
    assert run.world_size == 2 and run.status == "succeeded"
    assert checkpoint_world_size(latest_checkpoint(ws.job(name).checkpoints)) == 2
    log = ws.job(name).run_log(1).read_text()
    assert "[rank0] " in log and "[rank1] " in log  # one run log, every line tagged with its rank
    assert list((ws.job(name).logs / "run-1-ranks").rglob("stderr.log"))  # and each rank's own files


def test_cancel_resume_and_a_changed_world_size(ws, real_job):
    name = real_job("stopgo", {**TWO, "training": {"max_steps": 300, "save_steps": 10, "logging_steps": 5, "eval_split": 0.0}})
    service = _service(ws)
    try:
        service.submit(name)
        ckpt = wait_event(ws, name, "checkpoint")
        run = list_runs(ws.job(name))[0]
        tree = process_tree(run.pid)
        assert len(tree) >= 3  # launcher + two ranks
        service.cancel(name, wait=True)
        assert service.get(name).status == "cancelled"
        cancelled = events(ws, name, "cancelled")[-1]
        assert cancelled["step"] >= ckpt["step"] and cancelled["checkpoint"]
        assert checkpoint_world_size(latest_checkpoint(ws.job(name).checkpoints)) == 2
        wait_for(lambda: not any(p.is_running() and p.status() != "zombie" for p in tree), timeout=30)  # every rank stopped

        service.resume(name)  # same world size: continues exactly
        wait_event(ws, name, "started", after=lambda e: e["run"] == 2)
        resumed_at = wait_event(ws, name, "log", after=lambda e: e["run"] == 2)["step"]
        assert resumed_at > cancelled["step"]
        assert not [e for e in events(ws, name, "message") if e["stage"] == "resuming"]
        service.cancel(name, wait=True)
        stopped_again = events(ws, name, "cancelled")[-1]["step"]
        assert service.get(name).status == "cancelled"

        _set_processes(ws, name, 1)
        report = preflight(ws, read_resolved(ws.job(name)), ws.job(name).root)
        warning = next(w.message for w in report.warnings if w.field == "resources.num_processes")
        assert "written by 2 process(es) and this run uses 1" in warning
        service.resume(name)
        wait_for(lambda: service.get(name).status in ("succeeded", "failed"), timeout=600)
        assert service.get(name).status == "succeeded", service.get(name).error
    finally:
        service.stop()
    note = next(e for e in events(ws, name, "message") if e["stage"] == "resuming")
    assert "written by 2 process(es) and this run uses 1" in note["text"] and "instead of" in note["text"]
    third = events(ws, name, "started")[-1]
    assert third["world_size"] == 1 and third["resumed_from"]
    assert min(e["step"] for e in events(ws, name, "log") if e["run"] == 3) > stopped_again
