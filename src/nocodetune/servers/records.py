"""Server records: which AI servers run, where, and as which process.

The record is a JSON file next to the server's logs (`logs/<kind>/<id>.server.json`), the
source of truth because it survives a broken registry and is readable by hand. Each write
is mirrored into the SQL registry (`db.register_server`) so the API and UI can list
servers with everything else; a registry failure never stops a server.
"""

from __future__ import annotations

import json
import logging
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from nocodetune.workspace import Workspace

log = logging.getLogger(__name__)

ServerKind = Literal["api", "data", "jobs", "model"]
SERVER_KINDS: tuple[str, ...] = ("api", "data", "jobs", "model")
_SUFFIX = ".server.json"


class ServerRecord(BaseModel):
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)  # readers never see half a record
    _mirror_register(ws, record)


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
    try:
        from nocodetune import db

        db.remove_server(ws, record.id)
    except Exception as exc:  # noqa: BLE001 - the registry is an index; the file was the truth
        log.debug("registry remove_server failed: %s", exc)


def _mirror_register(ws: Workspace, record: ServerRecord) -> None:
    try:
        from nocodetune import db

        db.register_server(
            ws,
            id=record.id,
            kind=record.kind,
            pid=record.pid,
            pid_started_at=record.pid_create_time,
            host=record.host,
            port=record.port,
            url=record.url,
            serves=record.serves,
            log_file=record.log_path,
            meta={"job": record.job, "model": record.model, "background": record.background},
        )
    except Exception as exc:  # noqa: BLE001 - see module docstring
        log.debug("registry register_server failed: %s", exc)
