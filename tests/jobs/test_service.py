"""The job service over a fake trainer: statuses, progress, cancel, resume, restart, races."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from sqlalchemy import select

from nocodetune import db
from nocodetune.db import RunRow
from nocodetune.errors import ConflictError, NotFoundError
from nocodetune.jobs.runner import launch_run
from nocodetune.jobs.service import JobService
from nocodetune.records.events import Event, read_events
from nocodetune.workspace import Workspace
from tests.jobs.conftest import fake_command, make_job_folder, wait_for


def runs_of(ws, name: str) -> list[RunRow]:
    with db.session(ws) as s:
        job = s.scalar(select(db.JobRow).where(db.JobRow.name == name))
        return list(s.scalars(select(RunRow).where(RunRow.job_id == job.id).order_by(RunRow.n)))


def event_time(ws, name: str, kind: str) -> float:
    """When the job's (first) `kind` event was written: what the training process itself says."""
    events, _ = read_events(ws.job(name).events)
    return next(e.time for e in events if e.type == kind)


def test_foreground_run_reports_events_and_records_success(ws):
    make_job_folder(ws, "alpha")
    service = JobService(ws, command=fake_command("--steps", "4", "--sleep", "0.05"), poll_s=0.05)
    assert service.get("alpha").status == "created"
    seen: list[Event] = []
    statuses: list[str] = []

    def on_event(event: Event) -> None:
        seen.append(event)
        statuses.append(service.get("alpha").status)

    assert service.run_foreground("alpha", seen.append if False else on_event) == "succeeded"
    types = [e.type for e in seen]
    assert types[0] == "started" and types[-1] == "finished" and types.count("log") == 4
    assert "running" in statuses
    job = service.get("alpha")
    assert job.status == "succeeded" and job.progress == 1.0 and job.step == 4 and job.loss == pytest.approx(0.5)
    assert job.started_at is not None and job.finished_at is not None
    (run,) = runs_of(ws, "alpha")
    assert run.exit_code == 0 and run.status == "succeeded" and run.executor == "foreground"
    assert "fake trainer run 1" in (ws.job("alpha").root / run.log_file).read_text()
    with pytest.raises(ConflictError, match="already succeeded"):
        service.run_foreground("alpha")


def test_failed_run_keeps_the_trainers_reason(ws):
    make_job_folder(ws, "bad")
    service = JobService(ws, command=fake_command("--steps", "4", "--sleep", "0.01", "--fail"), poll_s=0.05)
    assert service.run_foreground("bad") == "failed"
    job = service.get("bad")
    assert job.error == "loss became NaN at step 2" and job.error_kind == "nan"
    assert runs_of(ws, "bad")[0].exit_code == 1


def test_unknown_job_is_not_found_and_creates_nothing(ws):
    service = JobService(ws, command=fake_command())
    with pytest.raises(NotFoundError, match="'ghost'"):
        service.run_foreground("ghost")
    assert not (ws.jobs / "ghost").exists()


def test_queue_runs_one_job_at_a_time_on_cpu(ws):
    make_job_folder(ws, "one")
    make_job_folder(ws, "two")
    service = JobService(ws, command=fake_command("--steps", "6", "--sleep", "0.1"), max_concurrent=1, poll_s=0.05)
    service.start()
    try:
        assert service.submit("one").status in {"queued", "running"}
        assert service.submit("two").status == "queued"
        wait_for(lambda: service.get("one").status == "running")
        assert service.get("two").status == "queued"
        with pytest.raises(ConflictError, match="already"):
            service.submit("one")
        wait_for(lambda: service.get("two").status == "succeeded", timeout=60)
        assert service.get("one").status == "succeeded"
        assert event_time(ws, "two", "started") >= event_time(ws, "one", "finished")  # never both at once
    finally:
        service.stop()


def test_cancel_then_resume_continues_from_the_checkpoint(ws):
    make_job_folder(ws, "long")
    service = JobService(ws, command=fake_command("--steps", "40", "--sleep", "0.1"), poll_s=0.05, cancel_grace_s=20)
    service.start()
    try:
        service.submit("long")
        wait_for(lambda: (service.get("long").step or 0) >= 2)
        service.cancel("long")
        wait_for(lambda: service.get("long").status == "cancelled", timeout=30)
        stopped_at = runs_of(ws, "long")[0]
        assert stopped_at.exit_code == 143
        assert (ws.job("long").checkpoints / "last.json").exists()
        with pytest.raises(ConflictError):
            service.cancel("long")
        service.resume("long")
        wait_for(lambda: service.get("long").status == "succeeded", timeout=60)
        metrics = (ws.job("long").metrics_json).read_text()
        assert '"resumed_from_step": 0' not in metrics
        assert [r.n for r in runs_of(ws, "long")] == [1, 2]
    finally:
        service.stop()


def test_cancel_kills_a_job_that_ignores_sigterm_after_the_grace_period(ws):
    make_job_folder(ws, "stubborn")
    service = JobService(ws, command=fake_command("--steps", "400", "--sleep", "0.1", "--ignore-term"), poll_s=0.05, cancel_grace_s=0.5)
    service.start()
    try:
        service.submit("stubborn")
        wait_for(lambda: (service.get("stubborn").step or 0) >= 1)
        service.cancel("stubborn")
        wait_for(lambda: service.get("stubborn").status == "cancelled", timeout=20)
        assert runs_of(ws, "stubborn")[0].exit_code == -9
    finally:
        service.stop()


def test_cancel_of_a_queued_job_never_starts_it(ws):
    make_job_folder(ws, "first")
    make_job_folder(ws, "second")
    # long enough that `first` is still running when cancelled, however loaded the machine
    service = JobService(ws, command=fake_command("--steps", "300", "--sleep", "0.1"), max_concurrent=1, poll_s=0.05, cancel_grace_s=5)
    service.start()
    try:
        service.submit("first")
        service.submit("second")
        assert service.cancel("second").status == "cancelled"
        service.cancel("first")
        wait_for(lambda: service.get("first").status == "cancelled")
        assert runs_of(ws, "second") == []
    finally:
        service.stop()


def test_restarted_service_follows_the_running_job_again(ws):
    make_job_folder(ws, "survivor")
    command = fake_command("--steps", "30", "--sleep", "0.1")
    first = JobService(ws, command=command, poll_s=0.05)
    first.start()
    first.submit("survivor")
    wait_for(lambda: (first.get("survivor").step or 0) >= 1)
    first.stop()  # the service goes away; the job does not
    step_then = first.get("survivor").step

    second = JobService(ws, command=command, poll_s=0.05)
    report = second.start()
    try:
        assert report["adopted"] == ["survivor"]
        assert second.executor is not None and second.executor.watching("survivor")
        wait_for(lambda: (second.get("survivor").step or 0) > step_then)
        wait_for(lambda: second.get("survivor").status == "succeeded", timeout=60)
        assert second.get("survivor").progress == 1.0
    finally:
        second.stop()


def _registered_running_with_a_dead_process(ws: Workspace, name: str) -> None:
    """The registry says run 1 of `name` is running, but its process has exited (a crash the service did not see)."""
    from nocodetune.jobs.registry import get_row

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with db.session(ws) as s:
        row = get_row(s, ws, name)
        row.status, row.current_run = "running", 1
        s.add(RunRow(job_id=row.id, n=1, pid=gone.pid, pid_started_at=1.0, status="running", events_offset=0))

def test_running_job_whose_process_is_gone_becomes_failed_interrupted(ws):
    make_job_folder(ws, "orphan")
    _registered_running_with_a_dead_process(ws, "orphan")
    service = JobService(ws, command=fake_command())
    report = service.start()
    try:
        assert report["interrupted"] == ["orphan"]
        job = service.get("orphan")
        assert job.status == "failed" and job.error.startswith("interrupted")
        assert service.resume("orphan").status in {"queued", "running"}  # interrupted jobs can be resumed
        wait_for(lambda: service.get("orphan").status == "succeeded")
    finally:
        service.stop()


def test_two_runners_racing_for_one_job_start_it_once(ws):
    make_job_folder(ws, "contested")
    command = fake_command("--steps", "10", "--sleep", "0.1")
    outcomes: list[object] = []
    barrier = threading.Barrier(4)

    def race() -> None:
        barrier.wait()
        try:
            outcomes.append(launch_run(ws, "contested", command=command))
        except ConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=race) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    handles = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(handles) == 1 and len(outcomes) == 4
    # a second service on the same workspace cannot queue it, nor a CLI run it
    other = JobService(ws, command=command)
    other.start()
    try:
        with pytest.raises(ConflictError, match="already running"):
            other.submit("contested")
        with pytest.raises(ConflictError, match="already running"):
            other.run_foreground("contested")
    finally:
        other.stop()
    handles[0].popen.wait(timeout=30)
    assert len(runs_of(ws, "contested")) == 1


def test_detached_run_keeps_its_lock_and_is_finalised_by_whoever_looks(ws):
    make_job_folder(ws, "away")
    service = JobService(ws, command=fake_command("--steps", "5", "--sleep", "0.1"), poll_s=0.05)
    handle = service.start_detached("away").handle
    with pytest.raises(ConflictError):
        JobService(ws, command=fake_command()).run_foreground("away")
    assert service.get("away").status == "running"
    handle.popen.wait(timeout=30)
    assert service.get("away").status == "succeeded"
    assert runs_of(ws, "away")[0].executor == "detached"


def test_a_run_whose_process_died_unseen_is_finalized_when_the_job_runs_again(ws):
    make_job_folder(ws, "crashed")
    _registered_running_with_a_dead_process(ws, "crashed")
    handle = launch_run(ws, "crashed", resume=True, command=fake_command("--steps", "2", "--sleep", "0.01"))
    handle.popen.wait(timeout=30)
    assert [r.n for r in runs_of(ws, "crashed")] == [1, 2]
    assert runs_of(ws, "crashed")[0].status == "failed"  # the lost run is recorded as interrupted, not left running
