"""Server records: which AI servers run, where, and as which process.

The record is a JSON file next to the server's logs (`logs/<kind>/<id>.server.json`): the
source of truth, because it survives a broken registry and is readable by hand. The
server manager mirrors it into the registry; this module only reads and writes files.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from nocodetune.records.io import write_model
from nocodetune.workspace import Workspace

log = logging.getLogger(__name__)

ServerKind = Literal["api", "data", "jobs", "model"]
SERVER_KINDS: tuple[str, ...] = ("api", "data", "jobs", "model")
_SUFFIX = ".server.json"


class ServerRecord(BaseModel):
    format_version: int = 1
    id: str
    kind: ServerKind
    pid: int
    pid_create_time: float = Field(description="psutil create_time of `pid`: pids are reused, this pair is not.")
    host: str
    port: int
    url: str
    serves: str = Field(description="What the server serves, in words (routes, job or model).")
    job: str | None = None
    model: str | None = None
    log_path: str | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    background: bool = True
    command: list[str] = Field(default_factory=list)


def record_path(ws: Workspace, kind: str, server_id: str) -> Path:
    return ws.server_logs(kind) / f"{server_id}{_SUFFIX}"


def save(ws: Workspace, record: ServerRecord) -> None:
    path = record_path(ws, record.kind, record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_model(path, record)


def load_all(ws: Workspace) -> list[ServerRecord]:
    records = []
    if not ws.logs.is_dir():
        return records
    for path in sorted(ws.logs.glob(f"*/*{_SUFFIX}")):
        try:
            records.append(ServerRecord.model_validate(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError):
            log.warning("ignoring unreadable server record %s", path)
    return sorted(records, key=lambda r: r.started_at)


def remove(ws: Workspace, record: ServerRecord) -> None:
    record_path(ws, record.kind, record.id).unlink(missing_ok=True)
