"""Export records: one folder per export of a job, `jobs/<job>/exports/<id>/`.

`export.json` says what was asked (format, quantisation, destination), what the export
is made of (the weights record: base identity with its hash, the adapters merged in) and
how it ended (files with sizes and hashes, or the error). `events.jsonl` next to it holds
the export's progress in the events format of `records.events`. An export never writes
the job's own `logs/events.jsonl`: a failed export must not turn a succeeded job into a
failed one. The exported files live in `model/` inside the export folder unless the user
chose another destination (`--out`), which the record names.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from nocodetune.errors import ConfigError, NocodetuneError, NotFoundError
from nocodetune.records.io import read_model, write_model
from nocodetune.records.weights import WeightsRecord
from nocodetune.workspace import JobPaths, check_name

EXPORT_FORMAT_VERSION = 1
ExportFormat = Literal["merged", "adapter", "gguf", "ollama", "hub"]
EXPORT_FORMATS: tuple[str, ...] = ("merged", "adapter", "gguf", "ollama", "hub")
GgufQuant = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_k"]
GGUF_QUANTS: tuple[str, ...] = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_k")
DEFAULT_QUANT = "q8_0"
ExportStatus = Literal["queued", "running", "succeeded", "failed"]
RECORD_FILE = "export.json"
EVENTS_FILE = "events.jsonl"
LOG_FILE = "export.log"
MODEL_DIRNAME = "model"

INTERRUPTED_ERROR = "interrupted: the export process stopped before it finished; start the export again"


def _now() -> datetime:
    return datetime.now(timezone.utc)


class ExportFile(BaseModel):
    path: str = Field(description="Relative to the export's folder.")
    size: int
    sha256: str | None = None


class ExportRequest(BaseModel):
    """What a user asks for; the same fields from the CLI and the REST API."""

    format: ExportFormat
    quant: GgufQuant | None = Field(None, description=f"GGUF and Ollama: weight type ({', '.join(GGUF_QUANTS)}); default {DEFAULT_QUANT}.")
    out: str | None = Field(None, description="Folder to write the export to (must not exist yet); default: the export's own folder in the job.")
    repo: str | None = Field(None, description="Hub: the repository id to push to (user/name).")
    private: bool = Field(True, description="Hub: create the repository private.")

    @model_validator(mode="after")
    def _fits_format(self) -> "ExportRequest":
        if self.quant is not None and self.format not in ("gguf", "ollama"):
            raise ValueError(f"quant applies to the gguf and ollama formats, not {self.format}")
        if self.repo is not None and self.format != "hub":
            raise ValueError(f"repo applies to the hub format, not {self.format}")
        return self

    def effective_quant(self) -> str | None:
        if self.format in ("gguf", "ollama"):
            return self.quant or DEFAULT_QUANT
        return None


class ExportRecord(BaseModel):
    format_version: int = EXPORT_FORMAT_VERSION
    id: str
    job: str
    request: ExportRequest
    folder: str = Field(description="Absolute path of the exported folder (the `model/` folder of the export, or the user's --out).")
    status: ExportStatus = "queued"
    created_at: datetime = Field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    pid: int | None = None
    pid_started_at: float | None = Field(None, description="Process create time: pids are reused, (pid, create time) is not.")
    weights: WeightsRecord | None = Field(None, description="What the exported model is made of: base identity and hash, adapters merged in order.")
    files: list[ExportFile] = Field(default_factory=list)
    details: dict[str, str] = Field(default_factory=dict, description="Format-specific facts: GGUF file and tensor types, Ollama command, hub URL.")
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None
    hint: str | None = None


def exports_dir(paths: JobPaths) -> Path:
    return paths.root / "exports"


def export_dir(paths: JobPaths, export_id: str) -> Path:
    return exports_dir(paths) / check_name(export_id, "export id")


def record_path(paths: JobPaths, export_id: str) -> Path:
    return export_dir(paths, export_id) / RECORD_FILE


def events_path(folder: Path) -> Path:
    return folder / EVENTS_FILE


def write_export(paths: JobPaths, record: ExportRecord) -> None:
    write_model(record_path(paths, record.id), record)


def update_export(paths: JobPaths, export_id: str, changes: dict[str, Any], *, only_if: Callable[[ExportRecord], bool] | None = None) -> ExportRecord:
    """Read, change and write a record under a lock, so two processes (the API that started
    an export, the export itself) never overwrite each other's changes."""
    from filelock import FileLock

    with FileLock(str(export_dir(paths, export_id) / ".export.json.lock")):
        record = read_export(paths, export_id)
        if only_if is not None and not only_if(record):
            return record
        record = record.model_copy(update=changes)
        write_export(paths, record)
        return record


def read_export(paths: JobPaths, export_id: str) -> ExportRecord:
    path = record_path(paths, export_id)
    if not path.is_file():
        raise NotFoundError(f"job {paths.name!r} has no export {export_id!r}", field="export", hint=f"list them with `nocodetune job exports {paths.name}`")
    record = read_model(path, ExportRecord, f"jobs/{paths.name}/exports/{export_id}/{RECORD_FILE}")
    if record.format_version > EXPORT_FORMAT_VERSION:
        raise ConfigError(f"jobs/{paths.name}/exports/{export_id}/{RECORD_FILE} was written by a newer NoCodeTune (format {record.format_version})", hint="upgrade NoCodeTune to read it")
    return record


def list_exports(paths: JobPaths) -> list[ExportRecord]:
    """Every readable export record of a job, oldest first (a damaged one is skipped, never fatal)."""
    root = exports_dir(paths)
    if not root.is_dir():
        return []
    out = []
    for folder in root.iterdir():
        if not (folder / RECORD_FILE).is_file():
            continue
        try:
            out.append(read_export(paths, folder.name))
        except NocodetuneError:
            continue
    return sorted(out, key=lambda r: (r.created_at, r.id))


_ID_RE = re.compile(r"-(\d+)$")


def new_export_id(paths: JobPaths, request: ExportRequest) -> tuple[str, Path]:
    """Reserve `<format>[-<quant>]-<n>` by creating its folder (exclusive), n one above the highest so far."""
    root = exports_dir(paths)
    root.mkdir(parents=True, exist_ok=True)
    stem = request.format + (f"-{request.effective_quant()}" if request.effective_quant() else "")
    taken = [int(m.group(1)) for p in root.iterdir() if (m := _ID_RE.search(p.name))]
    n = max(taken, default=0) + 1
    while True:
        export_id = f"{stem}-{n}"
        folder = root / export_id
        try:
            os.mkdir(folder)
        except FileExistsError:
            n += 1
            continue
        return export_id, folder
