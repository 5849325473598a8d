"""REST: exports of a job. `POST /api/jobs/{name}/export` starts one in the background.

The request is checked here (a refusal answers 4xx naming its cause, and nothing is
written); the export itself runs in its own process (`jobs.exports.start_background`),
so the API never loads a model. Progress is the export's own events, as Server-Sent
Events at `GET /api/jobs/{name}/exports/{id}/events`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from nocodetune.api.deps import job_service, workspace
from nocodetune.api.errors import API_ERRORS, error_responses
from nocodetune.api.event_stream import stream_file
from nocodetune.jobs import exports as export_service
from nocodetune.jobs.service import JobService
from nocodetune.records.exports import (
    ExportRecord,
    ExportRequest,
    events_path,
    export_dir,
)
from nocodetune.workspace import Workspace

router = APIRouter(responses=API_ERRORS)


@router.post("/jobs/{name}/export", response_model=ExportRecord, status_code=202, responses=error_responses(409))
def start_export(name: str, body: ExportRequest, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> ExportRecord:
    """Check and start an export; it runs in the background (follow `/exports/{id}` or its events)."""
    status = service.get(name).status  # 404 first
    request = export_service.checked_request(ws, name, body, status=status, within_workspace=True)  # 4xx naming the cause
    with export_service.export_slot(ws, name) as slot:  # 409 when every slot is busy; nothing written
        record = export_service.record_export(ws, name, request)
        return export_service.start_background(ws, name, record.id, slot)


@router.get("/jobs/{name}/exports", response_model=list[ExportRecord])
def list_exports(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> list[ExportRecord]:
    service.get(name)
    return export_service.job_exports(ws, name)


@router.get("/jobs/{name}/exports/{export_id}", response_model=ExportRecord)
def get_export(name: str, export_id: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> ExportRecord:
    service.get(name)
    return export_service.get_export(ws, name, export_id)


@router.get("/jobs/{name}/exports/{export_id}/events", response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}})
def export_events(
    name: str,
    export_id: str,
    after: int = Query(0, ge=0, description="Byte offset (an event id) to continue after."),
    ws: Workspace = Depends(workspace),
    service: JobService = Depends(job_service),
) -> StreamingResponse:
    """Server-Sent Events of one export (started, progress, finished | failed); closes when it ends."""
    service.get(name)
    export_service.get_export(ws, name, export_id)  # 404 for an unknown export
    return StreamingResponse(stream_file(events_path(export_dir(ws.job(name), export_id)), after, lambda: export_service.get_export(ws, name, export_id).status in ("queued", "running")), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
