"""Queue entries: `jobs/<job>/logs/queue.json`, one per queued job, for every process to read.

The queue is not held in any one process's memory: the API, a CLI waiting in the
foreground, a detached CLI waiter and a second API all read the same entries, so a job
waits its turn however it was started. Order is `seq` (nanoseconds at enqueue, then the
job name); an entry disappears when its job starts, is cancelled or is deleted (it lives
in the job folder). A rebuilt registry reads the entries back, so `workspace reindex`
loses no queued job.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from nocodetune.errors import NocodetuneError
from nocodetune.records.io import read_model, write_model
from nocodetune.workspace import JobPaths, Workspace

QueueOrigin = Literal["api", "cli", "detached"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class QueueEntry(BaseModel):
    format_version: int = 1
    job: str
    seq: int = Field(default_factory=time.time_ns, description="Queue order: nanoseconds at enqueue (ties: job name).")
    queued_at: datetime = Field(default_factory=_now)
    resume: bool = Field(False, description="Continue from the last checkpoint (job resume) rather than a fresh run.")
    executor: Literal["local", "ray"] = "local"
    slots: int = Field(1, ge=0, description="Local slots the job needs to start (0: it runs elsewhere, e.g. on Ray).")
    origin: QueueOrigin = Field("api", description="Which face queued it.")
    waiter_pid: int | None = Field(None, description="A process waiting to start this entry (a CLI), if any.")
    waiter_started_at: float | None = None


def entry_path(paths: JobPaths) -> Path:
    return paths.logs / "queue.json"


def write_entry(paths: JobPaths, entry: QueueEntry) -> None:
    write_model(entry_path(paths), entry)


def read_entry(paths: JobPaths) -> QueueEntry | None:
    """The job's queue entry; a damaged one still queues the job (named by its folder)."""
    path = entry_path(paths)
    if not path.is_file():
        return None
    try:
        return read_model(path, QueueEntry, f"jobs/{paths.name}/logs/queue.json")
    except NocodetuneError:
        try:
            seq = int(path.stat().st_mtime_ns)
        except OSError:
            return None
        return QueueEntry(job=paths.name, seq=seq)


def remove_entry(paths: JobPaths) -> bool:
    try:
        entry_path(paths).unlink()
        return True
    except FileNotFoundError:
        return False


def list_entries(ws: Workspace) -> list[QueueEntry]:
    """Every queued job of the workspace, first in line first."""
    if not ws.jobs.is_dir():
        return []
    entries = []
    for path in ws.jobs.glob("*/logs/queue.json"):
        name = path.parent.parent.name
        try:
            paths = ws.job(name)
        except NocodetuneError:
            continue  # a folder name that is not a job name is not ours
        entry = read_entry(paths)
        if entry is not None:
            entries.append(entry.model_copy(update={"job": name}))
    return sorted(entries, key=lambda e: (e.seq, e.job))


def queued_status(fields: dict[str, Any], entry: QueueEntry | None) -> dict[str, Any]:
    """A job's status for a rebuilt registry, given its queue entry: queued unless it runs."""
    if entry is None or fields.get("status") == "running":
        return fields
    return {**fields, "status": "queued", "queued_at": entry.queued_at}
