"""One run of a job: start it under its lock, follow its events, record how it ended.

Shared by every way a job runs (CLI foreground, CLI --detach, the API's queue) so that
all of them write the registry the same way and none can start a job twice. A run is a
local process tree (one training process, or torchrun with several) holding the job's
run lock and its slots, or a Ray job known by its submission id (`jobs.ray_executor`).
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
from nocodetune.config.validate_resources import ResourcePlan, plan_resources
from nocodetune.db import JobRow, RunRow
from nocodetune.errors import ConflictError
from nocodetune.jobs import ray_executor
from nocodetune.jobs.ray_executor import RayRef
from nocodetune.jobs.slots import HeldSlots, dispatch_lock
from nocodetune.records.job import read_resolved
from nocodetune.records.queue import read_entry, remove_entry
from nocodetune.records.runs import RunRecord, StopAction, clear_stop, read_run, read_stop, request_stop, write_run
from nocodetune.records.events import PROGRESS_KEYS, TERMINAL_TYPES, Event, last_started_offset, read_events, summarize_events
from nocodetune.jobs.lock import RunLock, is_locked
from nocodetune.processes import create_time, is_same_process, reap, signal_group, spawn_detached
from nocodetune.jobs.registry import apply_events, current_run, get_row, next_run_number
from nocodetune.jobs.status import ACTIVE, INTERRUPTED, TERMINAL, JobStatus, check_can_run, status_from_exit
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace

CommandFactory = Callable[[Path], list[str]]
EventCallback = Callable[[Event], None]


def training_command(job_dir: Path, num_processes: int = 1) -> list[str]:
    """`python -m nocodetune.training JOB_DIR` (several processes: torchrun through nocodetune.training.distributed),
    or NOCODETUNE_TRAINING_COMMAND with {python}, {job_dir} and {nproc}."""
    template = get_settings().training_command
    if template:
        return [
            part.replace("{python}", sys.executable).replace("{job_dir}", str(job_dir)).replace("{nproc}", str(num_processes))
            for part in shlex.split(template)
        ]
    if num_processes > 1:
        return [sys.executable, "-m", "nocodetune.training.distributed", "local", "--nproc-per-node", str(num_processes), str(job_dir)]
    return [sys.executable, "-m", "nocodetune.training", str(job_dir)]


_followed: dict[str, int] = {}  # job -> threads of this process following it
_followed_lock = threading.Lock()


@dataclass
class RunHandle:
    """A live run: enough to follow it, whether we spawned it or found it running."""

    job: str
    n: int
    pid: int | None
    pid_started_at: float | None
    events_offset: int
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    gpu: str | None = None
    ray: RayRef | None = None
    world_size: int = 1
    detail: str | None = None  # why a Ray job failed, as Ray says

    def exit_status(self) -> tuple[bool, int | None]:
        """(ended, exit code); the code is None when the process was not our child."""
        if self.ray is not None:
            current = ray_executor.state(self.ray)
            self.detail = current.message
            return current.ended, current.exit_code
        if self.popen is not None:
            code = self.popen.poll()
            return code is not None, code
        if is_same_process(self.pid, self.pid_started_at):
            return False, None
        return True, reap(self.pid)


def _child_env(ws: Workspace, n: int, resume: bool, gpu: str | None, num_processes: int = 1) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NOCODETUNE_RUN=str(n), NOCODETUNE_WORKSPACE=str(ws.root), PYTHONUNBUFFERED="1", NOCODETUNE_NUM_PROCESSES=str(num_processes))
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
    slots: HeldSlots | None = None,
    plan: ResourcePlan | None = None,
) -> RunHandle:
    """Take the job's lock, start its run (a local process that inherits the lock and `slots`, or a Ray job), record it.

    Raises ConflictError when another process runs it or its status does not allow a run.
    `slots` are handed to the process on success and released on failure.
    """
    paths = ws.job(name)
    try:
        _job_status(ws, name)  # NotFoundError before touching anything
        read_resolved(paths)  # a damaged resolved.json is refused now, naming the file, not by the trainer seconds later
        lock = RunLock(paths.lock_file, name).acquire()
    except BaseException:
        if slots is not None:
            slots.release()
        raise
    spawned = False
    try:
        status = _job_status(ws, name)
        if status == JobStatus.running.value:
            ref = ray_ref(ws, name, _current_run_number(ws, name))
            if ref is not None and not ray_executor.state(ref).ended:  # a Ray run holds no local lock
                raise ConflictError(f"job {name!r} is already running", field="name", hint=f"cancel it with `nocodetune job cancel {name}`")
            finalize_run(ws, name, _current_run_number(ws, name), exit_code=None)  # we hold the lock: its process is gone
            status = _job_status(ws, name)
        if from_queue:
            if read_entry(paths) is None:
                raise ConflictError(f"job {name!r} is no longer queued (status {status})", field="name")  # cancelled meanwhile
        else:
            check_can_run(name, status, resume=resume)
        resolved = read_resolved(paths)  # a damaged resolved.json is refused now, not by a process that fails later
        gpus = slots.gpus if slots is not None and slots.gpus else ([gpu] if gpu is not None else None)
        plan = plan or plan_resources(resolved.config, gpus=gpus)
        paths.logs.mkdir(parents=True, exist_ok=True)
        clear_stop(paths)  # before the run starts: a stop request from now on is for this run
        with db.session(ws) as s:
            row = get_row(s, ws, name)
            n = next_run_number(s, ws, row)
            offset = paths.events.stat().st_size if paths.events.exists() else 0
            if plan.executor == "ray":
                ref = ray_executor.submit(ws, paths, n=n, resume=resume, plan=plan)
                handle = RunHandle(job=name, n=n, pid=None, pid_started_at=None, events_offset=offset, ray=ref, world_size=plan.world_size)
                record = RunRecord(n=n, executor="ray", executor_ref=ref.submission_id, executor_address=ref.address,
                                   world_size=plan.world_size, events_offset=offset, log_file=f"logs/run-{n}.log")
                executor = "ray"
            else:
                gpu_env = ",".join(gpus) if gpus else None
                argv = command(paths.root) if command is not None else training_command(paths.root, plan.num_processes)
                fds = ((lock.fd,) if lock.fd is not None else ()) + (tuple(slots.fds) if slots is not None else ())
                popen = spawn_detached(argv, cwd=paths.root, log_path=paths.run_log(n), env=_child_env(ws, n, resume, gpu_env, plan.num_processes), keep_fds=fds)
                spawned = True
                handle = RunHandle(job=name, n=n, pid=popen.pid, pid_started_at=create_time(popen.pid) or time.time(), events_offset=offset,
                                   popen=popen, gpu=gpu_env, world_size=plan.world_size)
                record = RunRecord(n=n, executor=executor, pid=handle.pid, pid_started_at=handle.pid_started_at, gpu=gpu_env,
                                   world_size=plan.world_size, events_offset=offset, log_file=f"logs/run-{n}.log")
            _record_start(s, row, handle, executor)
            write_run(paths, record)
            remove_entry(paths)  # it runs: no longer queued
        return handle
    finally:
        if spawned:
            lock.handed_over()  # the training process holds it now
            if slots is not None:
                slots.handed_over()
        else:
            lock.release()
            if slots is not None:
                slots.release()


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


def ray_ref(ws: Workspace, name: str, n: int | None) -> RayRef | None:
    """The Ray job behind run `n`, from its run record (None for a local run)."""
    if n is None:
        return None
    record = read_run(ws.job(name), n)
    if record is None or record.executor != "ray" or not record.executor_ref or not record.executor_address:
        return None
    return RayRef(record.executor_address, record.executor_ref)


def attach_run(ws: Workspace, name: str) -> RunHandle | None:
    """A handle on the job's current run if it may still be going: its process is alive (pid AND start
    time match), or it is a Ray job (ask `exit_status()` whether Ray has ended it)."""
    with db.session(ws) as s:
        row = get_row(s, ws, name)
        run = current_run(s, row)
        if row.status != JobStatus.running.value or run is None:
            return None
        ref = ray_ref(ws, name, run.n)
        if ref is not None:
            record = read_run(ws.job(name), run.n)
            return RunHandle(job=name, n=run.n, pid=None, pid_started_at=None, events_offset=run.events_offset, ray=ref,
                             world_size=record.world_size if record else 1)
        if not is_same_process(run.pid, run.pid_started_at):
            return None
        return RunHandle(job=name, n=run.n, pid=run.pid or 0, pid_started_at=run.pid_started_at or 0.0, events_offset=run.events_offset, gpu=run.gpu)


def run_alive(ws: Workspace, name: str) -> bool:
    """Whether the job's current run still goes on: its lock is held, or Ray has not ended it (or does not answer)."""
    if is_locked(ws.job(name).lock_file):
        return True
    with db.session(ws) as s:
        row = get_row(s, ws, name)
        n = row.current_run if row.status == JobStatus.running.value else None
    ref = ray_ref(ws, name, n)
    return ref is not None and not ray_executor.state(ref).ended


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
    if handle.ray is not None:
        poll_s = max(poll_s, ray_executor.STATUS_EVERY_S / 4)
    asked = 0.0
    ended, code = False, None
    while True:
        if handle.ray is None or time.monotonic() - asked >= ray_executor.STATUS_EVERY_S:
            ended, code = handle.exit_status()
            asked = time.monotonic()
            if handle.ray is not None:
                ray_executor.sync_log(ws.job(handle.job), handle.n, handle.ray)
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
            return finalize_run(ws, handle.job, handle.n, exit_code=code, detail=handle.detail)
        if stop is not None and stop.wait(poll_s):
            return None
        if stop is None:
            time.sleep(poll_s)


def finalize_run(ws: Workspace, name: str, n: int | None, *, exit_code: int | None, detail: str | None = None) -> str:
    """Record how run `n` ended: its terminal event if it wrote one, else what the exit code says
    (`detail`: the executor's own account of a failure, e.g. Ray's message).

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
            if detail and status == JobStatus.failed.value:
                error = f"{error}: {detail}"
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
    """Cancel (or pause) a queued job at once, or stop a running one: SIGTERM its process (SIGKILL after
    `grace_s`), or Ray's stop for a Ray run (which sends the driver SIGTERM, then SIGKILL after the grace time).

    The trainer saves a checkpoint when asked to stop, so a cancelled or paused job can be
    resumed; the stop request on disk tells it which of the two to report (Ray workers,
    which get no signal, read it at every step). Returns the status right after the
    request (a running job stays "running" until it exits, unless `wait`).
    """
    stopped = JobStatus.paused.value if action == "pause" else JobStatus.cancelled.value
    paths = ws.job(name)
    with dispatch_lock(ws):  # no dispatcher starts it while we decide
        with db.session(ws) as s:
            row = get_row(s, ws, name)
            queued = read_entry(paths) is not None or row.status == JobStatus.queued.value
            if queued and not is_locked(paths.lock_file) and row.status != JobStatus.running.value:
                remove_entry(paths)
                row.status, row.finished_at, row.cancel_requested = stopped, db.utcnow(), False
                return row.status
            if row.status not in ACTIVE:
                raise ConflictError(f"job {name!r} is not running (status {row.status})", field="name")
            run = current_run(s, row)
            pid, started, n = (run.pid, run.pid_started_at, run.n) if run else (None, None, None)
    ref = ray_ref(ws, name, n)
    if ref is not None:
        return _cancel_ray(ws, name, n, ref, grace_s=grace_s, wait=wait, action=action)
    if not is_same_process(pid, started):
        if followed_here(name):
            return JobStatus.running.value  # just exited; its follower records how
        # already gone on its own: its events (or their absence) say how it ended
        return finalize_run(ws, name, n, exit_code=None)
    assert pid is not None
    with db.session(ws) as s:
        get_row(s, ws, name).cancel_requested = True
    request_stop(paths, action)
    signal_group(pid, signal.SIGTERM)

    def escalate() -> None:
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and is_same_process(pid, started):
            time.sleep(0.2)
        if is_same_process(pid, started):
            kill_tree(pid)

    if not wait:
        threading.Thread(target=escalate, name=f"cancel-{name}", daemon=True).start()
        return JobStatus.running.value
    escalate()
    deadline = time.monotonic() + 10
    while is_same_process(pid, started) and time.monotonic() < deadline:
        time.sleep(0.1)
    return finalize_run(ws, name, n, exit_code=reap(pid))


def kill_tree(pid: int) -> None:
    """SIGKILL a run's process group and every process below it (torchrun puts its workers in their own sessions)."""
    import psutil

    try:
        below = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        below = []
    signal_group(pid, signal.SIGKILL)
    for proc in below:
        try:
            proc.kill()
        except psutil.Error:
            pass


def _cancel_ray(ws: Workspace, name: str, n: int | None, ref: RayRef, *, grace_s: float, wait: bool, action: StopAction) -> str:
    current = ray_executor.state(ref)
    if current.ended:
        return finalize_run(ws, name, n, exit_code=current.exit_code, detail=current.message)
    with db.session(ws) as s:
        get_row(s, ws, name).cancel_requested = True
    request_stop(ws.job(name), action)  # read by the training workers at their next step
    ray_executor.stop(ref)  # Ray's stop: SIGTERM to the driver, SIGKILL after RAY_JOB_STOP_WAIT_TIME_S
    if not wait:
        return JobStatus.running.value
    current = ray_executor.wait_ended(ref, grace_s + 60)
    if not current.ended:
        return JobStatus.running.value
    ray_executor.sync_log(ws.job(name), n or 0, ref)
    return finalize_run(ws, name, n, exit_code=current.exit_code, detail=current.message)
