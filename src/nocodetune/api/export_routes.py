"""REST: exports of a job. `POST /api/jobs/{name}/export` starts one in the background.

The request is checked here (a refusal answers 4xx naming its cause, and nothing is
written); the export itself runs in its own process (`jobs.exports.start_background`),
so the API never loads a model. Progress is the export's own events, as Server-Sent
Events at `GET /api/jobs/{name}/exports/{id}/events`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from nocodetune.api.deps import job_service, workspace
from nocodetune.api.event_stream import HEARTBEAT_S, format_sse
from nocodetune.jobs import exports as export_service
from nocodetune.jobs.service import JobService
from nocodetune.records.events import read_events_with_offsets
from nocodetune.records.exports import (
    ExportRecord,
    ExportRequest,
    events_path,
    export_dir,
)
from nocodetune.workspace import Workspace

router = APIRouter()


@router.post("/jobs/{name}/export", response_model=ExportRecord, status_code=202)
def start_export(name: str, body: ExportRequest, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> ExportRecord:
    """Check and start an export; it runs in the background (follow `/exports/{id}` or its events)."""
    status = service.get(name).status  # 404 first
    record = export_service.create_export(ws, name, body, status=status, within_workspace=True)
    return export_service.start_background(ws, name, record.id)


@router.get("/jobs/{name}/exports", response_model=list[ExportRecord])
def list_exports(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> list[ExportRecord]:
    service.get(name)
    return export_service.job_exports(ws, name)


@router.get("/jobs/{name}/exports/{export_id}", response_model=ExportRecord)
def get_export(name: str, export_id: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> ExportRecord:
    service.get(name)
    return export_service.get_export(ws, name, export_id)


async def _stream(ws: Workspace, name: str, export_id: str, after: int, poll_s: float = 0.5) -> AsyncIterator[str]:
    path = events_path(export_dir(ws.job(name), export_id))
    offset, idle = after, 0.0
    yield "retry: 2000\n\n"
    while True:
        batch = await run_in_threadpool(read_events_with_offsets, path, offset)
        for event, end in batch:
            offset = end
            yield format_sse(event, end)
        if not batch:
            record = await run_in_threadpool(export_service.get_export, ws, name, export_id)
            if record.status not in ("queued", "running"):
                for event, end in await run_in_threadpool(read_events_with_offsets, path, offset):
                    yield format_sse(event, end)
                return
            idle += poll_s
            if idle >= HEARTBEAT_S:
                idle = 0.0
                yield ": keep-alive\n\n"
        else:
            idle = 0.0
        await asyncio.sleep(poll_s)


@router.get("/jobs/{name}/exports/{export_id}/events")
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
    return StreamingResponse(_stream(ws, name, export_id, after), media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
