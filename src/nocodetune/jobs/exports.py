"""The export service: request an export of a job, run it here or in the background, read its state.

Faces check the request (`checked_request`: every refusal, nothing written), take the
machine (`export_slot`), record the export (`record_export`: reserves
`jobs/<job>/exports/<id>/`), then `run_here` (the CLI: in this process, with progress
callbacks) or `start_background` (the API and `--detach`: `python -m
nocodetune.jobs.exports JOB_DIR ID` in its own session, which inherits the slot, so an
export survives an API restart).

An export uses one of the machine's job slots (`jobs.slots.take_for_export`, the rule in
docs/DECISIONS.md "Slots and the queue"): it never runs beside a training job that holds
the only CPU slot, and with no free slot it is refused (409) before anything is written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from nocodetune.errors import ConflictError, NocodetuneError, NotFoundError
from nocodetune.jobs.slots import HeldSlots, take_for_export
from nocodetune.processes import create_time, is_same_process, spawn_detached
from nocodetune.records.events import Event, EventWriter
from nocodetune.records.exports import (
    INTERRUPTED_ERROR,
    LOG_FILE,
    MODEL_DIRNAME,
    ExportRecord,
    ExportRequest,
    events_path,
    export_dir,
    list_exports,
    new_export_id,
    read_export,
    update_export,
    write_export,
)
from nocodetune.workspace import JobPaths, Workspace, resolve_within



def _job_status(ws: Workspace, name: str) -> str:
    from nocodetune.jobs.service import JobService

    return JobService(ws).get(name).status


def checked_request(ws: Workspace, name: str, request: ExportRequest, *, status: str | None = None, within_workspace: bool = False) -> ExportRequest:
    """The request as it will run, or the refusal naming its cause; writes nothing.

    `status` is the job's status when the caller knows it (the API's service); `within_workspace`
    refuses an `out` folder outside the workspace (the API: a remote caller must not write anywhere).
    """
    from nocodetune.export.preflight import check_request

    paths = ws.job(name)
    status = status or _job_status(ws, name)
    if status != "succeeded":
        raise ConflictError(f"job {name!r} is {status}; only a succeeded job can be exported", field="name", hint="run the job to the end first")
    if request.out is not None:
        out = ws.inside(request.out) if within_workspace else Path(request.out).expanduser().resolve()
        request = request.model_copy(update={"out": str(out)})
    check_request(paths, request)
    return request


def record_export(ws: Workspace, name: str, request: ExportRequest) -> ExportRecord:
    """Reserve `jobs/<job>/exports/<id>/` and record a queued export of a `checked_request`."""
    paths = ws.job(name)
    export_id, folder = new_export_id(paths, request)
    dest = Path(request.out) if request.out else folder / MODEL_DIRNAME
    record = ExportRecord(id=export_id, job=name, request=request, folder=str(dest))
    write_export(paths, record)
    return record


def create_export(ws: Workspace, name: str, request: ExportRequest, *, status: str | None = None, within_workspace: bool = False) -> ExportRecord:
    """Check the request, then record it (nothing is written on refusal)."""
    return record_export(ws, name, checked_request(ws, name, request, status=status, within_workspace=within_workspace))


@contextmanager
def export_slot(ws: Workspace, name: str) -> Iterator[HeldSlots]:
    """One of the machine's job slots for an export of `name`, or ConflictError (409) naming who holds them.

    Released when the block ends, unless `start_background` handed it to the export's process.
    """
    held = take_for_export(ws, f"export of {name}")
    try:
        yield held
    finally:
        held.release()


def run_here(ws: Workspace, name: str, export_id: str, on_event: Callable[[Event], None] | None = None) -> ExportRecord:
    """Run a recorded export in this process (the CLI, inside `export_slot`)."""
    from nocodetune.export.runner import run_export

    return run_export(ws.job(name), export_id, on_event=on_event)


def start_background(ws: Workspace, name: str, export_id: str, slot: HeldSlots) -> ExportRecord:
    """Start a recorded export in its own process, which takes over `slot`; its record names the process."""
    paths = ws.job(name)
    folder = export_dir(paths, export_id)
    process = spawn_detached([sys.executable, "-m", "nocodetune.jobs.exports", str(paths.root), export_id], log_path=folder / LOG_FILE, keep_fds=tuple(slot.fds))
    slot.handed_over()
    changes = {"pid": process.pid, "pid_started_at": create_time(process.pid)}
    # the child writes its own pid when it starts; whichever comes first, neither change is lost
    return update_export(paths, export_id, changes, only_if=lambda r: r.pid is None)


def settle(paths: JobPaths, record: ExportRecord) -> ExportRecord:
    """The record as it really stands: an export whose process is gone without finishing failed (interrupted)."""
    if record.status not in ("queued", "running") or record.pid is None:
        return record
    if is_same_process(record.pid, record.pid_started_at):
        return record
    def still_unfinished(current: ExportRecord) -> bool:  # it may have finished, or restarted, since the first read
        return current.status in ("queued", "running") and not is_same_process(current.pid, current.pid_started_at)

    changes = {"status": "failed", "error": INTERRUPTED_ERROR, "finished_at": datetime.now(timezone.utc)}
    settled = update_export(paths, record.id, changes, only_if=still_unfinished)
    if settled.error == INTERRUPTED_ERROR and settled.finished_at == changes["finished_at"]:
        EventWriter(events_path(export_dir(paths, record.id))).emit("failed", error=INTERRUPTED_ERROR, kind="killed")
    return settled


def get_export(ws: Workspace, name: str, export_id: str) -> ExportRecord:
    paths = ws.job(name)
    return settle(paths, read_export(paths, export_id))


def job_exports(ws: Workspace, name: str) -> list[ExportRecord]:
    paths = ws.job(name)
    if not paths.resolved_json.is_file():
        raise NotFoundError(f"job {name!r} does not exist", field="name")
    return [settle(paths, record) for record in list_exports(paths)]


EXPORTS_PREFIX = "exports/"


def listed_files(ws: Workspace, name: str) -> list[tuple[str, int, datetime]]:
    """(`exports/<id>/<file>`, size, finished) of every file of the job's finished exports, for the outputs listing."""
    out = []
    for record in job_exports(ws, name):
        if record.status == "succeeded" and record.finished_at is not None:
            out.extend((f"{EXPORTS_PREFIX}{record.id}/{f.path}", f.size, record.finished_at) for f in record.files)
    return out


def listed_file(ws: Workspace, name: str, relative: str) -> Path | None:
    """The file an `exports/<id>/<file>` path of the outputs listing names (inside that export's folder), or None."""
    if not relative.startswith(EXPORTS_PREFIX):
        return None
    export_id, _, rest = relative[len(EXPORTS_PREFIX) :].partition("/")
    paths = ws.job(name)
    try:
        record = read_export(paths, export_id)
    except NocodetuneError:
        return None
    if record.status != "succeeded" or rest not in {f.path for f in record.files}:
        return None
    return resolve_within(Path(record.folder), rest, f"export {export_id} of job {name!r}")


def main(argv: list[str] | None = None) -> int:
    """`python -m nocodetune.jobs.exports JOB_DIR EXPORT_ID`: run one recorded export (the API's background task; its parent handed it the slot)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m nocodetune.jobs.exports JOB_DIR EXPORT_ID", file=sys.stderr)
        return 2
    job_dir = Path(args[0]).resolve()
    ws = Workspace(job_dir.parent.parent)
    record = run_here(ws, job_dir.name, args[1])
    return 0 if record.status == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
