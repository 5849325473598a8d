"""Run records: one JSON file per execution of a job, and the stop request a user leaves.

`jobs/<job>/logs/run-<n>.json` says which process (or Ray job) ran run n, on which slot,
and how it ended, so the registry can be rebuilt without losing run history and a
restarted service can find a run again. `jobs/<job>/logs/stop.json` holds a pending
cancel or pause request: the training process reads it on SIGTERM to know which of the
two it is ending with.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from nocodetune.errors import NocodetuneError
from nocodetune.records.io import read_model, write_model
from nocodetune.workspace import JobPaths

RunStatus = Literal["running", "succeeded", "failed", "cancelled", "paused"]
StopAction = Literal["cancel", "pause"]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class RunRecord(BaseModel):
    format_version: int = 1
    n: int = Field(ge=1)
    executor: str = Field("local", description="local, foreground, detached, torchrun or ray.")
    executor_ref: str | None = Field(None, description="The executor's own id for the run (a Ray submission id).")
    executor_address: str | None = Field(None, description="Where the executor is reached (a Ray cluster's job-submission address).")
    pid: int | None = None
    pid_started_at: float | None = Field(None, description="Process create time: pids are reused, (pid, create time) is not.")
    gpu: str | None = None
    world_size: int = 1
    events_offset: int = Field(0, description="Byte offset in events.jsonl where this run's events start.")
    started_at: datetime = Field(default_factory=_now)
    ended_at: datetime | None = None
    exit_code: int | None = None
    status: RunStatus = "running"
    error: str | None = None
    error_kind: str | None = None
    log_file: str | None = None


class StopRequest(BaseModel):
    format_version: int = 1
    action: StopAction
    requested_at: datetime = Field(default_factory=_now)


def run_record_path(paths: JobPaths, n: int) -> Path:
    return paths.logs / f"run-{n}.json"


def write_run(paths: JobPaths, record: RunRecord) -> None:
    write_model(run_record_path(paths, record.n), record)


def read_run(paths: JobPaths, n: int) -> RunRecord | None:
    path = run_record_path(paths, n)
    if not path.is_file():
        return None
    try:
        return read_model(path, RunRecord, f"jobs/{paths.name}/logs/{path.name}")
    except NocodetuneError:
        return None  # a damaged run record loses that run's pid, never the job


def list_runs(paths: JobPaths) -> list[RunRecord]:
    """Every readable run record of a job, oldest first."""
    if not paths.logs.is_dir():
        return []
    numbers = sorted(int(p.stem.split("-")[1]) for p in paths.logs.glob("run-*.json") if p.stem.split("-")[1].isdigit())
    return [r for r in (read_run(paths, n) for n in numbers) if r is not None]


def _stop_path(paths: JobPaths) -> Path:
    return paths.logs / "stop.json"


def request_stop(paths: JobPaths, action: StopAction) -> None:
    write_model(_stop_path(paths), StopRequest(action=action))


def read_stop(paths: JobPaths) -> StopRequest | None:
    path = _stop_path(paths)
    if not path.is_file():
        return None
    try:
        return read_model(path, StopRequest)
    except NocodetuneError:
        return StopRequest(action="cancel")  # a damaged request still means "stop"


def clear_stop(paths: JobPaths) -> None:
    _stop_path(paths).unlink(missing_ok=True)


INTERRUPTED_ERROR = "interrupted: the training process stopped without a final event; resume to continue from the last checkpoint"


def settle_status(summary: dict[str, Any], runs: list[RunRecord], alive: bool) -> dict[str, Any]:
    """The job's status from its events' summary and its run records: the one rule for a rebuilt registry.

    Events win when they end in a terminal event. A run whose events stop at `started`
    ended as its run record says (cancelled by exit code, killed ...), or, if no record
    says and no process holds the job, as interrupted.
    """
    if summary["status"] != "running" or alive:
        return summary
    out = dict(summary)
    last = runs[-1] if runs else None
    if last is not None and last.ended_at is not None and last.status != "running":
        out.update(status=last.status, error=last.error, error_kind=last.error_kind, finished_at=last.ended_at)
    else:
        out.update(status="failed", error=INTERRUPTED_ERROR, error_kind="killed")
    return out
