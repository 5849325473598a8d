"""The on-disk job queue and its dispatcher, shared by every process that starts jobs.

`enqueue` writes the job's queue entry (`records/queue.py`); `dispatch_once`, under the
workspace's dispatch lock, walks the entries in order and starts each one whose slots
are free (`jobs/slots.py`). The first entry that needs local slots and cannot get them
stops the walk for every later entry that needs local slots (first come, first served,
so a 2-slot job is not starved by 1-slot jobs behind it); entries that need none (Ray
jobs) start at once.

Dispatchers: the API's executor thread; a CLI `job run` waiting in the foreground; and
for `job run --detach` with no free slot, a small waiter process
(`python -m nocodetune.jobs.queue wait WORKSPACE JOB`) that dispatches until its entry
has started or been cancelled. Any dispatcher may start any entry, so the queue moves
as long as one of them runs; `nocodetune serve` (the API) also resumes the queue after
a restart.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nocodetune import db
from nocodetune.config.validate_resources import plan_resources
from nocodetune.errors import ConflictError, NocodetuneError
from nocodetune.jobs.registry import get_row
from nocodetune.jobs.runner import CommandFactory, RunHandle, launch_run, run_alive
from nocodetune.jobs.slots import SlotPool
from nocodetune.jobs.status import JobStatus
from nocodetune.processes import create_time, is_same_process, spawn_detached
from nocodetune.records.job import read_resolved
from nocodetune.records.queue import QueueEntry, QueueOrigin, list_entries, read_entry, remove_entry, write_entry
from nocodetune.workspace import Workspace

log = logging.getLogger("nocodetune.jobs")

# How the run record names the face that queued a run (kept from before the queue was shared).
RUN_EXECUTOR = {"api": "local", "cli": "foreground", "detached": "detached"}


def enqueue(ws: Workspace, name: str, *, resume: bool, origin: QueueOrigin, waiter_pid: int | None = None) -> QueueEntry:
    """Queue the job (its status must allow the run; the caller checked): an entry on disk, `queued` in the registry."""
    paths = ws.job(name)
    plan = plan_resources(read_resolved(paths).config)  # refuses a damaged resolved.json before anything is queued
    entry = QueueEntry(job=name, resume=resume, executor=plan.executor, slots=plan.local_slots(), origin=origin)
    if waiter_pid is not None:
        entry.waiter_pid, entry.waiter_started_at = waiter_pid, create_time(waiter_pid)
    write_entry(paths, entry)
    with db.session(ws) as s:
        row = get_row(s, ws, name)
        row.status, row.queued_at, row.error, row.error_kind, row.cancel_requested = JobStatus.queued.value, db.utcnow(), None, None, False
        row.finished_at = None
    return entry


def set_waiter(ws: Workspace, name: str, pid: int) -> None:
    entry = read_entry(ws.job(name))
    if entry is not None:
        write_entry(ws.job(name), entry.model_copy(update={"waiter_pid": pid, "waiter_started_at": create_time(pid)}))


def dispatch_once(ws: Workspace, pool: SlotPool, *, command: CommandFactory | None = None) -> list[RunHandle]:
    """Start every queued job whose turn it is and whose slots are free; return the runs started here."""
    started: list[RunHandle] = []
    with pool.dispatch_lock():
        blocked = False
        for entry in list_entries(ws):
            if entry.slots > 0 and blocked:
                continue
            held = None
            if entry.slots > 0:
                held = pool.try_take(entry.slots, owner=entry.job)
                if held is None:
                    blocked = True  # first come, first served for local slots
                    continue
            handle = _start(ws, entry, held, command)
            if handle is not None:
                started.append(handle)
    return started


def _start(ws: Workspace, entry: QueueEntry, held: object, command: CommandFactory | None) -> RunHandle | None:
    paths = ws.job(entry.job)
    try:
        return launch_run(ws, entry.job, resume=entry.resume, from_queue=True, slots=held, command=command, executor=RUN_EXECUTOR[entry.origin])  # type: ignore[arg-type]
    except ConflictError:
        if not paths.root.is_dir() or run_alive(ws, entry.job):
            remove_entry(paths)  # deleted, or started by someone else: the entry is spent
        return None
    except NocodetuneError as exc:
        _fail(ws, entry.job, exc.message, "config")
    except Exception as exc:  # noqa: BLE001 - a start failure fails the job, never the dispatcher
        log.exception("could not start job %s", entry.job)
        _fail(ws, entry.job, f"could not start the training process: {exc}", "error")
    return None


def _fail(ws: Workspace, name: str, error: str, kind: str) -> None:
    remove_entry(ws.job(name))
    try:
        with db.session(ws) as s:
            row = get_row(s, ws, name)
            row.status, row.error, row.error_kind, row.finished_at = JobStatus.failed.value, error, kind, db.utcnow()
    except NocodetuneError:
        pass  # the job was deleted meanwhile


@dataclass
class Position:
    """Where a queued job stands: 1-based place among the jobs that need local slots, and who holds the slots."""

    place: int
    ahead: list[str]
    busy: dict[str, str]


def position(ws: Workspace, name: str, pool: SlotPool) -> Position | None:
    entries = list_entries(ws)
    mine = next((e for e in entries if e.job == name), None)
    if mine is None:
        return None
    ahead = [e.job for e in entries if e.slots > 0 and (e.seq, e.job) < (mine.seq, mine.job)]
    return Position(place=len(ahead) + 1, ahead=ahead, busy=pool.holders())


def orphaned(entry: QueueEntry) -> bool:
    """An entry queued by a CLI whose waiting process is gone (only an API or another dispatcher will start it)."""
    return entry.origin != "api" and entry.waiter_pid is not None and not is_same_process(entry.waiter_pid, entry.waiter_started_at)


def spawn_waiter(ws: Workspace, name: str) -> int:
    """A detached process that dispatches until this job's entry has started or gone (CLI --detach)."""
    paths = ws.job(name)
    env = dict(os.environ, NOCODETUNE_WORKSPACE=str(ws.root), PYTHONUNBUFFERED="1")
    proc = spawn_detached([sys.executable, "-m", "nocodetune.jobs.queue", "wait", str(ws.root), name], log_path=paths.logs / "queue-waiter.log", env=env)
    set_waiter(ws, name, proc.pid)
    return proc.pid


def wait_turn(ws: Workspace, name: str, pool: SlotPool, *, poll_s: float = 1.0, command: CommandFactory | None = None) -> None:
    """Dispatch until `name` has left the queue (started by anyone, or cancelled)."""
    while read_entry(ws.job(name)) is not None:
        for handle in dispatch_once(ws, pool, command=command):
            print(f"started {handle.job} (run {handle.n}, pid {handle.pid})", flush=True)
        if read_entry(ws.job(name)) is None:
            break
        time.sleep(poll_s)


def _main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "wait":
        print("usage: python -m nocodetune.jobs.queue wait WORKSPACE JOB", file=sys.stderr)
        return 2
    ws = Workspace(Path(argv[1]))
    print(f"waiting for a free slot for {argv[2]}", flush=True)
    wait_turn(ws, argv[2], SlotPool(ws))
    print(f"{argv[2]} left the queue", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
