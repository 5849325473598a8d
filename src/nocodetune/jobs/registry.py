"""Job rows in the registry, kept in step with the job folders (which win).

A job folder without a row gets one (jobs made by hand, by an older version, or while the
registry was away); a row without a folder goes. Progress fields are copied from events.
"""

from __future__ import annotations

from typing import Any, Callable

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from nocodetune import db
from nocodetune.records.job import read_resolved
from nocodetune.db import JobRow, RunRow
from nocodetune.errors import NotFoundError
from nocodetune.records.events import PROGRESS_KEYS, Event, summarize_events
from nocodetune.jobs.lock import is_locked
from nocodetune.jobs.status import TERMINAL
from nocodetune.workspace import Workspace

def lock_probe(ws: Workspace) -> Callable[[str], bool]:
    """`is_running(name)` as far as the run lock can tell (works across processes)."""
    return lambda name: is_locked(ws.job(name).lock_file)


def folder_names(ws: Workspace) -> set[str]:
    if not ws.jobs.is_dir():
        return set()
    return {p.parent.name for p in ws.jobs.glob("*/resolved.json")}


def sync_jobs(ws: Workspace, *, rebuild: bool = False) -> int:
    """Add rows for job folders that lack one and drop rows whose folder is gone."""
    if rebuild:
        return db.reindex_jobs(ws, lock_probe(ws))
    names = folder_names(ws)
    probe = lock_probe(ws)
    with db.session(ws) as s:
        known = {row.name: row for row in s.scalars(select(JobRow))}
        for name, row in known.items():
            if name not in names:
                s.delete(row)
        for name in names - known.keys():
            row = db.job_row_from_folder(ws, name, probe)
            if row is not None:
                try:
                    with s.begin_nested():
                        s.add(row)
                except IntegrityError:
                    pass  # healed by another process meanwhile
    return len(names)


def get_row(s: Session, ws: Workspace, name: str) -> JobRow:
    """The row of job `name`, created from its folder if missing; NotFoundError if neither exists."""
    paths = ws.job(name)  # checks the name
    row = s.scalar(select(JobRow).where(JobRow.name == name))
    if row is not None and not paths.root.is_dir():
        s.delete(row)
        row = None
    if row is None:
        row = db.job_row_from_folder(ws, name, lock_probe(ws)) if paths.resolved_json.exists() else None
        if row is None:
            if paths.resolved_json.exists():
                read_resolved(paths)  # damaged: the ConfigError names the file (not "does not exist")
            raise NotFoundError(f"job {name!r} does not exist", field="name", hint="list jobs with `nocodetune job list`")
        try:
            with s.begin_nested():  # another process may be healing the same folder right now
                s.add(row)
        except IntegrityError:
            row = s.scalar(select(JobRow).where(JobRow.name == name))
            assert row is not None
    return row


def current_run(s: Session, row: JobRow) -> RunRow | None:
    if row.current_run is None:
        return None
    return s.scalar(select(RunRow).where(RunRow.job_id == row.id, RunRow.n == row.current_run))


def next_run_number(s: Session, ws: Workspace, row: JobRow) -> int:
    on_disk = [int(p.stem.split("-")[1]) for p in ws.job(row.name).run_logs() if p.stem.split("-")[1].isdigit()]
    in_db = s.scalar(select(func.max(RunRow.n)).where(RunRow.job_id == row.id)) or 0
    return max([in_db, row.current_run or 0, *on_disk]) + 1


def apply_events(row: JobRow, events: list[Event]) -> bool:
    """Copy progress (and a terminal outcome) from `events` onto `row`; True if any applied."""
    if not events:
        return False
    summary = summarize_events(events)
    for key in (*PROGRESS_KEYS, "started_at"):
        if key in summary:
            setattr(row, key, summary[key])
    if summary["status"] in TERMINAL:
        row.status = summary["status"]
        row.finished_at = summary.get("finished_at")
        row.error = summary.get("error")
        row.error_kind = summary.get("error_kind")
    return True


def query_rows(
    s: Session, *, status: str | None = None, base: str | None = None, q: str | None = None, offset: int = 0, limit: int = 50
) -> tuple[list[JobRow], int]:
    """Filtered, newest-first page of job rows and the total count."""
    query = select(JobRow)
    if status:
        query = query.where(JobRow.status.in_([v.strip() for v in status.split(",") if v.strip()]))
    if base:
        query = query.where(JobRow.base == base)
    if q:
        like = f"%{q}%"
        query = query.where(or_(JobRow.name.ilike(like), JobRow.description.ilike(like)))
    total = s.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = list(s.scalars(query.order_by(JobRow.created_at.desc(), JobRow.name).offset(offset).limit(limit)))
    return rows, total


def row_summary(row: JobRow) -> dict[str, Any]:
    """The registry view of a job, as the API and the CLI list it."""
    return {
        "name": row.name,
        "base": row.base,
        "parent": row.parent,
        "description": row.description,
        "status": row.status,
        "created_at": db.as_utc(row.created_at),
        "started_at": db.as_utc(row.started_at),
        "finished_at": db.as_utc(row.finished_at),
        "progress": {key: getattr(row, key) for key in PROGRESS_KEYS},
        "error": row.error,
        "error_kind": row.error_kind,
        "run": row.current_run,
        "cancel_requested": row.cancel_requested,
    }
