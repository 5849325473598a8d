"""The job service: what faces call to queue, run, cancel, resume and watch jobs.

It owns no state the disk and the registry do not hold, so a service can stop and a new
one pick up where it left: on `start` it reconciles (runs whose process still lives are
followed again, those whose process is gone become failed "interrupted", queued jobs are
queued again).
"""

from __future__ import annotations

import signal
from typing import Callable

from sqlalchemy import select

from nocodetune import db
from nocodetune.db import JobRow
from nocodetune.errors import ConflictError
from nocodetune.records.job import read_resolved
from nocodetune.records.events import TERMINAL_TYPES, Event, read_events
from nocodetune.jobs.executor import LocalExecutor, detect_gpus, plan_slots
from nocodetune.jobs.lock import is_locked
from nocodetune.processes import signal_group
from nocodetune.jobs.registry import apply_events, current_run, get_row, query_rows, sync_jobs
from nocodetune.jobs.runner import CommandFactory, RunHandle, attach_run, finalize_run, follow_run, followed_here, launch_run, request_cancel
from nocodetune.jobs.status import JobStatus, check_can_run
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace


class JobService:
    """Job lifecycle over one workspace. `start()` only where jobs are queued (the API)."""

    def __init__(
        self,
        ws: Workspace,
        *,
        command: CommandFactory | None = None,
        max_concurrent: int | None = None,
        cancel_grace_s: float | None = None,
        poll_s: float = 0.5,
    ) -> None:
        settings = get_settings()
        self.ws = ws
        self.command = command
        self.cancel_grace_s = settings.cancel_grace_seconds if cancel_grace_s is None else cancel_grace_s
        self.poll_s = poll_s
        self._max_concurrent = max_concurrent or settings.max_concurrent_jobs
        self.executor: LocalExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> dict[str, list[str]]:
        """Start the queue and reconcile the registry with the processes that really run."""
        db.init_db(self.ws)
        slots = plan_slots(self._max_concurrent, detect_gpus())
        self.executor = LocalExecutor(self.ws, slots=slots, command=self.command, poll_s=self.poll_s)
        self.executor.start()
        return self.reconcile()

    def stop(self) -> None:
        """Stop following; running jobs go on and the next service adopts them."""
        if self.executor is not None:
            self.executor.stop()
            self.executor = None

    def reconcile(self) -> dict[str, list[str]]:
        sync_jobs(self.ws)
        report: dict[str, list[str]] = {"adopted": [], "interrupted": [], "requeued": []}
        with db.session(self.ws) as s:
            rows = list(s.scalars(select(JobRow).where(JobRow.status.in_([JobStatus.running.value, JobStatus.queued.value]))))
            active = [(row.name, row.status) for row in rows]
        for name, status in active:
            if status == JobStatus.queued.value:
                if self.executor is not None:
                    self.executor.submit(name)
                    report["requeued"].append(name)
                continue
            if self.executor is not None and self.executor.watching(name):
                continue
            handle = attach_run(self.ws, name)
            if handle is not None:
                if self.executor is not None:
                    self.executor.adopt(handle)
                report["adopted"].append(name)
            elif is_locked(self.ws.job(name).lock_file):
                report["adopted"].append(name)  # held by a process the registry has no pid for; leave it
            else:
                finalize_run(self.ws, name, self._current_run_number(name), exit_code=None)
                report["interrupted"].append(name)
        return report

    def _current_run_number(self, name: str) -> int | None:
        with db.session(self.ws) as s:
            return get_row(s, self.ws, name).current_run

    # -- reading -----------------------------------------------------------------------
    def get(self, name: str) -> JobRow:
        """The job's row, brought up to date with a run nobody here follows (e.g. a detached CLI run)."""
        self.refresh(name)
        with db.session(self.ws) as s:
            return get_row(s, self.ws, name)

    def list(self, *, status: str | None = None, base: str | None = None, q: str | None = None, offset: int = 0, limit: int = 50) -> tuple[list[JobRow], int]:
        sync_jobs(self.ws)
        with db.session(self.ws) as s:
            running = list(s.scalars(select(JobRow.name).where(JobRow.status == JobStatus.running.value)))
        for name in running:
            self.refresh(name)
        with db.session(self.ws) as s:
            return query_rows(s, status=status, base=base, q=q, offset=offset, limit=limit)

    def refresh(self, name: str) -> None:
        if followed_here(name):
            return  # its follower keeps the row current and records the exit code
        with db.session(self.ws) as s:
            row = get_row(s, self.ws, name)
            if row.status != JobStatus.running.value:
                return
            run = current_run(s, row)
            n = row.current_run
            offset = run.events_offset if run is not None else None
        handle = attach_run(self.ws, name)
        if handle is None:
            if not is_locked(self.ws.job(name).lock_file):
                finalize_run(self.ws, name, n, exit_code=None)
            return
        if offset is not None:
            events, _ = read_events(self.ws.job(name).events, offset)
            with db.session(self.ws) as s:
                apply_events(get_row(s, self.ws, name), [e for e in events if e.type not in TERMINAL_TYPES])

    # -- actions -------------------------------------------------------------------------
    def submit(self, name: str, *, resume: bool = False) -> JobRow:
        """Queue the job for this service's executor (the API's run/resume)."""
        if self.executor is None:
            raise RuntimeError("JobService.start() must run before jobs are queued")
        self.refresh(name)
        read_resolved(self.ws.job(name))  # refuse a damaged job now (naming the file), not when the queue reaches it
        if is_locked(self.ws.job(name).lock_file):
            raise ConflictError(f"job {name!r} is already running", field="name")
        with db.session(self.ws) as s:
            row = get_row(s, self.ws, name)
            check_can_run(name, row.status, resume=resume)
            row.status, row.queued_at, row.error, row.error_kind, row.cancel_requested = JobStatus.queued.value, db.utcnow(), None, None, False
        self.executor.submit(name, resume)
        return self.get(name)

    def resume(self, name: str) -> JobRow:
        return self.submit(name, resume=True)

    def cancel(self, name: str, *, wait: bool = False) -> JobRow:
        """Cancel a queued job, or ask a running one to stop (checkpoint, then exit)."""
        if self.executor is not None:
            self.executor.remove(name)
        request_cancel(self.ws, name, grace_s=self.cancel_grace_s, wait=wait)
        return self.get(name)

    def pause(self, name: str, *, wait: bool = False) -> JobRow:
        """Like cancel, but the job ends `paused`: the user means to resume it."""
        if self.executor is not None:
            self.executor.remove(name)
        request_cancel(self.ws, name, grace_s=self.cancel_grace_s, wait=wait, action="pause")
        return self.get(name)

    def start_detached(self, name: str, *, resume: bool = False) -> RunHandle:
        """Spawn the job so that it outlives the caller (CLI --detach); the registry records the run."""
        return launch_run(self.ws, name, resume=resume, command=self.command, executor="detached")

    def run_foreground(self, name: str, on_event: Callable[[Event], None] | None = None, *, resume: bool = False) -> str:
        """Run the job in a child process, holding its lock; call on_event per event; return final status.

        Ctrl-C asks the job to stop gracefully (it saves a checkpoint); a second Ctrl-C kills it.
        """
        handle = launch_run(self.ws, name, resume=resume, command=self.command, executor="foreground")
        try:
            return follow_run(self.ws, handle, on_event, poll_s=self.poll_s) or JobStatus.running.value
        except KeyboardInterrupt:
            request_cancel(self.ws, name, grace_s=self.cancel_grace_s, wait=False)
        try:
            return follow_run(self.ws, handle, on_event, poll_s=self.poll_s) or JobStatus.cancelled.value
        except KeyboardInterrupt:
            signal_group(handle.pid, signal.SIGKILL)
            code = handle.popen.wait() if handle.popen is not None else None
            return finalize_run(self.ws, name, handle.n, exit_code=code)
