"""One run of a job: start it under its lock, follow its events, record how it ended.

Shared by every way a job runs (CLI foreground, CLI --detach, the service's queue) so
that all of them write the registry the same way and none can start a job twice.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from nocodetune import db
from nocodetune.db import JobRow, RunRow
from nocodetune.errors import ConflictError
from nocodetune.records.job import read_resolved
from nocodetune.records.runs import RunRecord, StopAction, clear_stop, read_run, read_stop, request_stop, write_run
from nocodetune.records.events import PROGRESS_KEYS, TERMINAL_TYPES, Event, last_started_offset, read_events, summarize_events
from nocodetune.jobs.lock import RunLock
from nocodetune.processes import create_time, is_same_process, reap, signal_group, spawn_detached
from nocodetune.jobs.registry import apply_events, current_run, get_row, next_run_number
from nocodetune.jobs.status import ACTIVE, INTERRUPTED, TERMINAL, JobStatus, check_can_run, status_from_exit
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace

CommandFactory = Callable[[Path], list[str]]
EventCallback = Callable[[Event], None]


def training_command(job_dir: Path) -> list[str]:
    """`python -m nocodetune.training JOB_DIR`, or NOCODETUNE_TRAINING_COMMAND with {python} and {job_dir}."""
    template = get_settings().training_command
    if not template:
        return [sys.executable, "-m", "nocodetune.training", str(job_dir)]
    return [part.replace("{python}", sys.executable).replace("{job_dir}", str(job_dir)) for part in shlex.split(template)]


_followed: dict[str, int] = {}  # job -> threads of this process following it
_followed_lock = threading.Lock()


@dataclass
class RunHandle:
    """A live run: enough to follow it, whether we spawned it or found it running."""

    job: str
    n: int
    pid: int
    pid_started_at: float
    events_offset: int
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    gpu: str | None = None

    def exit_status(self) -> tuple[bool, int | None]:
        """(ended, exit code); the code is None when the process was not our child."""
        if self.popen is not None:
            code = self.popen.poll()
            return code is not None, code
        if is_same_process(self.pid, self.pid_started_at):
            return False, None
        return True, reap(self.pid)


def _child_env(ws: Workspace, n: int, resume: bool, gpu: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NOCODETUNE_RUN=str(n), NOCODETUNE_WORKSPACE=str(ws.root), PYTHONUNBUFFERED="1")
    if resume:
        env["NOCODETUNE_RESUME"] = "1"
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return env


def launch_run(
    ws: Workspace,
    name: str,
    *,
    resume: bool = False,
    from_queue: bool = False,
    gpu: str | None = None,
    command: CommandFactory | None = None,
    executor: str = "local",
) -> RunHandle:
    """Take the job's lock, spawn its training process (which inherits the lock), record the run.

    Raises ConflictError when another process runs it or its status does not allow a run.
    """
    paths = ws.job(name)
    _job_status(ws, name)  # NotFoundError before touching anything
    read_resolved(paths)  # a damaged resolved.json is refused now, naming the file, not by the trainer seconds later
    lock = RunLock(paths.lock_file, name).acquire()
    spawned = False
    try:
        status = _job_status(ws, name)
        if status == JobStatus.running.value:
            # we hold the lock, so whoever marked it running is gone
            finalize_run(ws, name, _current_run_number(ws, name), exit_code=None)
            status = _job_status(ws, name)
        if from_queue and status != JobStatus.queued.value:
            raise ConflictError(f"job {name!r} is no longer queued (status {status})", field="name")  # cancelled meanwhile
        if not from_queue:
            check_can_run(name, status, resume=resume)
        paths.logs.mkdir(parents=True, exist_ok=True)
        with db.session(ws) as s:
            row = get_row(s, ws, name)
            n = next_run_number(s, ws, row)
            offset = paths.events.stat().st_size if paths.events.exists() else 0
            argv = (command or training_command)(paths.root)
            popen = spawn_detached(argv, cwd=paths.root, log_path=paths.run_log(n), env=_child_env(ws, n, resume, gpu), keep_fds=(lock.fd,) if lock.fd is not None else ())
            spawned = True
            handle = RunHandle(job=name, n=n, pid=popen.pid, pid_started_at=create_time(popen.pid) or time.time(), events_offset=offset, popen=popen, gpu=gpu)
            _record_start(s, row, handle, executor)
            clear_stop(paths)
            write_run(paths, RunRecord(n=n, executor=executor, pid=handle.pid, pid_started_at=handle.pid_started_at, gpu=gpu, events_offset=offset, log_file=f"logs/run-{n}.log"))
        return handle
    finally:
        if spawned:
            lock.handed_over()  # the training process holds it now
        else:
            lock.release()


def _job_status(ws: Workspace, name: str) -> str:
    with db.session(ws) as s:
        return get_row(s, ws, name).status


def _current_run_number(ws: Workspace, name: str) -> int | None:
    with db.session(ws) as s:
        return get_row(s, ws, name).current_run


def _record_start(s: Session, row: JobRow, handle: RunHandle, executor: str) -> None:
    """The run row, and the job marked running with its progress reset."""
    s.add(
        RunRow(
            job_id=row.id, n=handle.n, executor=executor, pid=handle.pid, pid_started_at=handle.pid_started_at, gpu=handle.gpu,
            status=JobStatus.running.value, events_offset=handle.events_offset, started_at=db.utcnow(),
            log_file=f"logs/run-{handle.n}.log",
        )
    )
    row.status, row.current_run, row.cancel_requested = JobStatus.running.value, handle.n, False
    row.started_at, row.finished_at, row.error, row.error_kind = db.utcnow(), None, None, None
    for key in PROGRESS_KEYS:
        setattr(row, key, None)
    row.progress = 0.0


def attach_run(ws: Workspace, name: str) -> RunHandle | None:
    """A handle on the job's current run if its process is still alive (pid AND start time match)."""
    with db.session(ws) as s:
        row = get_row(s, ws, name)
        run = current_run(s, row)
        if row.status != JobStatus.running.value or run is None:
            return None
        if not is_same_process(run.pid, run.pid_started_at):
            return None
        return RunHandle(job=name, n=run.n, pid=run.pid or 0, pid_started_at=run.pid_started_at or 0.0, events_offset=run.events_offset, gpu=run.gpu)


def follow_run(
    ws: Workspace,
    handle: RunHandle,
    on_event: EventCallback | None = None,
    stop: threading.Event | None = None,
    poll_s: float = 0.5,
) -> str | None:
    """Tail the run's events into the registry (and `on_event`) until it ends; return its final status.

    Returns None, leaving the run alone, when `stop` is set first (the service shutting down).
    """
    with _followed_lock:
        _followed[handle.job] = _followed.get(handle.job, 0) + 1
    try:
        return _follow(ws, handle, on_event, stop, poll_s)
    finally:
        with _followed_lock:
            _followed[handle.job] -= 1
            if not _followed[handle.job]:
                del _followed[handle.job]


def followed_here(name: str) -> bool:
    """True while a thread of this process follows the job (it, not a bystander, records the exit)."""
    with _followed_lock:
        return name in _followed


def _follow(ws: Workspace, handle: RunHandle, on_event: EventCallback | None, stop: threading.Event | None, poll_s: float) -> str | None:
    events_path = ws.job(handle.job).events
    offset = handle.events_offset
    while True:
        ended, code = handle.exit_status()
        events, offset = read_events(events_path, offset)
        if events:
            with db.session(ws) as s:
                row = get_row(s, ws, handle.job)
                if row.current_run == handle.n:
                    apply_events(row, [e for e in events if e.type not in TERMINAL_TYPES])  # the outcome waits for the exit
            if on_event is not None:
                for event in events:
                    on_event(event)
        if ended:
            return finalize_run(ws, handle.job, handle.n, exit_code=code)
        if stop is not None and stop.wait(poll_s):
            return None
        if stop is None:
            time.sleep(poll_s)


def finalize_run(ws: Workspace, name: str, n: int | None, *, exit_code: int | None) -> str:
    """Record how run `n` ended: its terminal event if it wrote one, else what the exit code says.

    Idempotent: a run already ended keeps its outcome (two watchers may both see it end).
    """
    with db.session(ws) as s:
        row = get_row(s, ws, name)
        run = s.scalar(select(RunRow).where(RunRow.job_id == row.id, RunRow.n == n)) if n is not None else None
        if run is not None and run.ended_at is not None:
            return run.status
        offset = run.events_offset if run is not None else last_started_offset(ws.job(name).events)
        events, _ = read_events(ws.job(name).events, offset)
        summary = summarize_events(events)
        paths = ws.job(name)
        if summary["status"] in TERMINAL:
            status, error, kind = summary["status"], summary.get("error"), summary.get("error_kind")
        else:
            stop = read_stop(paths)
            status, error, kind = status_from_exit(exit_code, stop.action if stop else None)
            if kind == "killed" and error == INTERRUPTED:
                error = f"{INTERRUPTED}: the training process stopped without a final event; resume to continue from the last checkpoint"
        clear_stop(paths)
        if run is not None:
            run.exit_code, run.ended_at, run.status = exit_code, db.utcnow(), status
        if n is not None:
            record = read_run(paths, n)
            if record is not None and record.ended_at is None:
                write_run(paths, record.model_copy(update={"exit_code": exit_code, "ended_at": db.utcnow(), "status": status, "error": error, "error_kind": kind}))
        if row.current_run == n or n is None:
            apply_events(row, [e for e in events if e.type not in TERMINAL_TYPES])
            row.status, row.error, row.error_kind = status, error, kind
            row.finished_at = summary.get("finished_at") or db.utcnow()
            row.cancel_requested = False
            if status == JobStatus.succeeded.value:
                row.progress, row.eta_seconds = 1.0, 0.0
        return status


def request_cancel(ws: Workspace, name: str, *, grace_s: float = 30.0, wait: bool = False, action: StopAction = "cancel") -> str:
    """Cancel (or pause) a queued job at once, or SIGTERM a running one (SIGKILL after `grace_s`).

    The trainer saves a checkpoint on SIGTERM, so a cancelled or paused job can be
    resumed; the stop request on disk tells it which of the two to report. Returns the
    status right after the request (a running job stays "running" until it exits,
    unless `wait`).
    """
    with db.session(ws) as s:
        row = get_row(s, ws, name)
        if row.status == JobStatus.queued.value:
            row.status, row.finished_at = (JobStatus.paused.value if action == "pause" else JobStatus.cancelled.value), db.utcnow()
            return row.status
        if row.status not in ACTIVE:
            raise ConflictError(f"job {name!r} is not running (status {row.status})", field="name")
        run = current_run(s, row)
        row.cancel_requested = True
        request_stop(ws.job(name), action)
        pid, started, n = (run.pid, run.pid_started_at, run.n) if run else (None, None, None)
    if not is_same_process(pid, started):
        if followed_here(name):
            return JobStatus.running.value  # just exited; its follower records how
        # already gone: its events (or their absence) say how it ended
        return finalize_run(ws, name, n, exit_code=None)
    assert pid is not None
    signal_group(pid, signal.SIGTERM)

    def escalate() -> None:
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and is_same_process(pid, started):
            time.sleep(0.2)
        if is_same_process(pid, started):
            signal_group(pid, signal.SIGKILL)

    if not wait:
        threading.Thread(target=escalate, name=f"cancel-{name}", daemon=True).start()
        return JobStatus.running.value
    escalate()
    deadline = time.monotonic() + 10
    while is_same_process(pid, started) and time.monotonic() < deadline:
        time.sleep(0.1)
    return finalize_run(ws, name, n, exit_code=reap(pid))
