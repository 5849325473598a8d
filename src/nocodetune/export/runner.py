"""Run one export: the format's work in a staging folder, renamed into place at the end.

The export writes into a temporary folder beside its destination (same filesystem) and
renames it at the end, so a destination folder either holds a complete export or does
not exist. Progress goes to the export's own `events.jsonl`, and the outcome (files with
their hashes, what the model is made of, or the error) to its `export.json`; the job's
own events are never touched.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from nocodetune.errors import NocodetuneError
from nocodetune.export.common import ExportResult, Progress, list_files
from nocodetune.export.preflight import check_request
from nocodetune.processes import create_time
from nocodetune.records.events import Event, EventWriter
from nocodetune.records.exports import (
    ExportRecord,
    events_path,
    export_dir,
    update_export,
    write_export,
)
from nocodetune.workspace import JobPaths

EventCallback = Callable[[Event], None]


def _now() -> datetime:
    return datetime.now(timezone.utc)


class _Reporter:
    """Progress → events, at most a few per second (a GGUF has hundreds of tensors)."""

    def __init__(self, writer: EventWriter, on_event: EventCallback | None) -> None:
        self.writer = writer
        self.on_event = on_event
        self._last = (0.0, "", -1.0)

    def emit(self, type: str, **fields: object) -> None:
        event = self.writer.emit(type, **fields)  # type: ignore[arg-type]
        if self.on_event is not None:
            self.on_event(event)

    def __call__(self, stage: str, fraction: float, text: str) -> None:
        when, last_stage, last_fraction = self._last
        now = time.monotonic()
        if stage == last_stage and fraction - last_fraction < 0.01 and now - when < 1.0:
            return
        self._last = (now, stage, fraction)
        self.emit("progress", stage=stage, progress=round(min(max(fraction, 0.0), 1.0), 4), text=text)


def _produce(paths: JobPaths, record: ExportRecord, stage: Path, progress: Progress) -> ExportResult:
    request = record.request
    if request.format == "merged":
        from nocodetune.export.merged import export_merged

        return export_merged(paths, stage, progress)
    if request.format == "adapter":
        from nocodetune.export.adapter import export_adapter

        return export_adapter(paths, stage, progress)
    if request.format == "gguf":
        from nocodetune.export.gguf import export_gguf

        return export_gguf(paths, stage, str(request.effective_quant()), progress)
    if request.format == "ollama":
        from nocodetune.export.ollama import export_ollama

        return export_ollama(paths, stage, str(request.effective_quant()), progress)
    from nocodetune.export.hub import export_hub

    return export_hub(paths, stage, request, progress)


def _publish(stage: Path, dest: Path) -> None:
    """Rename the finished staging folder to its destination (an empty destination folder is replaced)."""
    if dest.is_dir() and not any(dest.iterdir()):
        dest.rmdir()
    os.replace(stage, dest)


def run_export(paths: JobPaths, export_id: str, *, on_event: EventCallback | None = None) -> ExportRecord:
    """Do the export recorded as `export_id` of the job, in this process; return its final record."""
    from nocodetune.settings import apply_network_policy

    apply_network_policy()
    reporter = _Reporter(EventWriter(events_path(export_dir(paths, export_id))), on_event)
    pid = os.getpid()
    record = update_export(paths, export_id, {"status": "running", "started_at": _now(), "pid": pid, "pid_started_at": create_time(pid)})
    reporter.emit("started", pid=pid, format=record.request.format, quant=record.request.effective_quant(), folder=record.folder)
    dest = Path(record.folder)
    stage: Path | None = None
    try:
        check_request(paths, record.request)
        dest.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
        stage.chmod(0o755)  # mkdtemp makes it private; a model server may run as another user
        result = _produce(paths, record, stage, reporter)
        reporter("publishing", 0.95, f"moving the finished export to {dest}")
        _publish(stage, dest)
        stage = None
        if record.request.format == "hub":
            from nocodetune.export.hub import push

            result.details["url"] = push(dest, record.request, reporter)
        record = record.model_copy(
            update={
                "status": "succeeded", "finished_at": _now(), "weights": result.weights, "files": list_files(dest),
                "details": result.details, "warnings": result.warnings,
            }
        )
        write_export(paths, record)
        reporter.emit("finished", folder=str(dest), files=len(record.files), details=result.details, warnings=result.warnings)
    except Exception as exc:  # every failure ends the export's record, never the job's
        known = isinstance(exc, NocodetuneError)
        message = exc.message if isinstance(exc, NocodetuneError) else f"{type(exc).__name__}: {exc}"
        hint = exc.hint if isinstance(exc, NocodetuneError) else None
        if not known:
            traceback.print_exc()  # into the export's log: a bug, not a user error
        kept = list_files(dest) if stage is None and dest.is_dir() else []  # a hub push that failed after the folder was written
        record = record.model_copy(update={"status": "failed", "finished_at": _now(), "error": message, "hint": hint, "files": kept})
        write_export(paths, record)
        reporter.emit("failed", error=message, kind="config" if known else "error", hint=hint)
    finally:
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    return record
