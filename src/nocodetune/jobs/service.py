"""The job service: what faces call to queue, run, cancel, resume and watch jobs.

It owns no state the disk and the registry do not hold, so a service can stop and a new
one pick up where it left: on `start` it reconciles (runs whose process still lives, or
whose Ray job Ray still runs, are followed again; those gone become failed "interrupted";
the on-disk queue is dispatched again). Every face goes through the same on-disk queue
and the same slots (`jobs/queue.py`, `jobs/slots.py`): a run that finds no free slot
waits its turn, whichever face started it (docs/DECISIONS.md, "Slots and the queue").
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Callable

from sqlalchemy import select

from nocodetune import db
from nocodetune.db import JobRow
from nocodetune.errors import ConflictError
from nocodetune.records.job import read_resolved
from nocodetune.records.events import TERMINAL_TYPES, Event, read_events
from nocodetune.records.queue import list_entries, read_entry
from nocodetune.jobs import ray_executor
from nocodetune.jobs.executor import LocalExecutor
from nocodetune.jobs.lock import is_locked
from nocodetune.jobs.queue import Position, dispatch_once, enqueue, position, spawn_waiter
from nocodetune.jobs.slots import SlotPool, plan_slots
from nocodetune.config.validate_resources import visible_gpus
from nocodetune.jobs.registry import apply_events, current_run, get_row, query_rows, sync_jobs
from nocodetune.jobs.runner import (
    CommandFactory, RunHandle, attach_run, finalize_run, follow_run, followed_here, kill_tree, request_cancel, run_alive,
)
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
        self.pool = SlotPool(ws, plan_slots(self._max_concurrent, visible_gpus()))
        self.executor: LocalExecutor | None = None

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> dict[str, list[str]]:
        """Reconcile the registry with the runs that really go on, then dispatch the queue."""
        db.init_db(self.ws)
        self.executor = LocalExecutor(self.ws, slots=self.pool.slots, command=self.command, poll_s=self.poll_s)
        report = self.reconcile()
        self.executor.start()
        return report

    def stop(self) -> None:
        """Stop following; running jobs go on and the next service adopts them."""
        if self.executor is not None:
            self.executor.stop()
            self.executor = None

    def reconcile(self) -> dict[str, list[str]]:
        """Follow live runs again, finalize dead ones, and make the registry agree with the on-disk queue."""
        sync_jobs(self.ws)
        report: dict[str, list[str]] = {"adopted": [], "interrupted": [], "requeued": []}
        on_disk = {e.job for e in list_entries(self.ws)}
        with db.session(self.ws) as s:
            rows = list(s.scalars(select(JobRow).where(JobRow.status.in_([JobStatus.running.value, JobStatus.queued.value]))))
            active = [(row.name, row.status) for row in rows]
            for row in s.scalars(select(JobRow).where(JobRow.name.in_(on_disk))):
                if row.status not in (JobStatus.running.value, JobStatus.queued.value):
                    row.status = JobStatus.queued.value  # the entry on disk is the truth
        for name in sorted(on_disk):
            report["requeued"].append(name)
        for name, status in active:
            if status == JobStatus.queued.value:
                if name not in on_disk:  # queued in a registry that predates the on-disk queue: queue it again
                    enqueue(self.ws, name, resume=False, origin="api")
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
        """Bring a running job's row up to date with a run nobody here follows (its events, its end)."""
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
        if handle.ray is not None:
            ended, code = handle.exit_status()
            ray_executor.sync_log(self.ws.job(name), handle.n, handle.ray)
            if ended:
                finalize_run(self.ws, name, n, exit_code=code, detail=handle.detail)
                return
        if offset is not None:
            events, _ = read_events(self.ws.job(name).events, offset)
            with db.session(self.ws) as s:
                apply_events(get_row(s, self.ws, name), [e for e in events if e.type not in TERMINAL_TYPES])

    # -- actions -------------------------------------------------------------------------
    def _check_runnable(self, name: str, resume: bool) -> None:
        self.refresh(name)
        read_resolved(self.ws.job(name))  # refuse a damaged job now (naming the file), not when the queue reaches it
        if run_alive(self.ws, name):
            raise ConflictError(f"job {name!r} is already running", field="name", hint=f"cancel it with `nocodetune job cancel {name}`")
        with db.session(self.ws) as s:
            status = get_row(s, self.ws, name).status
        if status == JobStatus.queued.value and read_entry(self.ws.job(name)) is None:
            status = JobStatus.cancelled.value  # queued in the registry only (an older release's in-memory queue)
        check_can_run(name, status, resume=resume)

    def submit(self, name: str, *, resume: bool = False) -> JobRow:
        """Queue the job for any dispatcher (the API's run/resume); it starts when its slots are free."""
        if self.executor is None:
            raise RuntimeError("JobService.start() must run before jobs are queued")
        self._check_runnable(name, resume)
        self.executor.submit(name, resume)
        return self.get(name)

    def resume(self, name: str) -> JobRow:
        return self.submit(name, resume=True)

    def cancel(self, name: str, *, wait: bool = False) -> JobRow:
        """Cancel a queued job, or ask a running one to stop (checkpoint, then exit)."""
        request_cancel(self.ws, name, grace_s=self.cancel_grace_s, wait=wait)
        return self.get(name)

    def pause(self, name: str, *, wait: bool = False) -> JobRow:
        """Like cancel, but the job ends `paused`: the user means to resume it."""
        request_cancel(self.ws, name, grace_s=self.cancel_grace_s, wait=wait, action="pause")
        return self.get(name)

    def position(self, name: str) -> Position | None:
        return position(self.ws, name, self.pool)

    def start_detached(self, name: str, *, resume: bool = False) -> "DetachedStart":
        """Start the job so that it outlives the caller (CLI --detach), or queue it with a waiter process that starts it in turn."""
        self._check_runnable(name, resume)
        enqueue(self.ws, name, resume=resume, origin="detached")
        mine = [h for h in dispatch_once(self.ws, self.pool, command=self.command) if h.job == name]
        if mine:
            return DetachedStart(handle=mine[0])
        if read_entry(self.ws.job(name)) is None:  # started by another dispatcher meanwhile, or refused
            return DetachedStart(handle=attach_run(self.ws, name))
        spawn_waiter(self.ws, name)
        return DetachedStart(queued=self.position(name))

    def run_foreground(
        self,
        name: str,
        on_event: Callable[[Event], None] | None = None,
        *,
        resume: bool = False,
        on_queued: Callable[[Position], None] | None = None,
    ) -> str:
        """Run the job, waiting in the queue first if its slots are busy; call on_event per event; return the final status.

        Ctrl-C while queued cancels the queued run; while running it asks the job to stop
        gracefully (it saves a checkpoint); a second Ctrl-C kills it.
        """
        self._check_runnable(name, resume)
        enqueue(self.ws, name, resume=resume, origin="cli", waiter_pid=os.getpid())
        try:
            handle = self._wait_turn(name, on_queued)
        except KeyboardInterrupt:
            return request_cancel(self.ws, name, grace_s=self.cancel_grace_s)
        if handle is None:
            return self.get(name).status  # cancelled while queued, or failed to start
        try:
            return follow_run(self.ws, handle, on_event, poll_s=self.poll_s) or JobStatus.running.value
        except KeyboardInterrupt:
            request_cancel(self.ws, name, grace_s=self.cancel_grace_s, wait=False)
        try:
            return follow_run(self.ws, handle, on_event, poll_s=self.poll_s) or JobStatus.cancelled.value
        except KeyboardInterrupt:
            if handle.pid is not None:
                kill_tree(handle.pid)
            code = handle.popen.wait() if handle.popen is not None else None
            return finalize_run(self.ws, name, handle.n, exit_code=code)

    def _wait_turn(self, name: str, on_queued: Callable[[Position], None] | None) -> RunHandle | None:
        """Dispatch until this job starts (here, or by another dispatcher), or leaves the queue without starting."""
        told: tuple[int, tuple[str, ...]] | None = None
        while True:
            for handle in dispatch_once(self.ws, self.pool, command=self.command):
                if handle.job == name:
                    return handle
            if read_entry(self.ws.job(name)) is None:
                return attach_run(self.ws, name)  # started by another dispatcher (None: cancelled or refused)
            where = self.position(name)
            if where is not None and on_queued is not None and told != (where.place, tuple(sorted(where.busy.values()))):
                told = (where.place, tuple(sorted(where.busy.values())))
                on_queued(where)
            time.sleep(max(self.poll_s, 0.2))


@dataclass
class DetachedStart:
    """What `start_detached` did: started the run (`handle`), or queued it behind others (`queued`)."""

    handle: RunHandle | None = None
    queued: Position | None = None
