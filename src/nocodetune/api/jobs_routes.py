"""REST: the jobs routes (the seed's fine-tuning server). Thin: parse, call the service, shape.

Handlers are plain `def` so FastAPI runs them in its thread pool: they touch the disk and
the registry, and must not block the event loop.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, Field

from nocodetune.api import jobs_views as views
from nocodetune.api.errors import API_ERRORS, error_responses
from nocodetune.api.deps import job_file, job_service, workspace
from nocodetune.api.event_stream import stream_events
from nocodetune.api.jobs_models import BaseInfo, CloneJobRequest, CreateJobRequest, DeleteResult, JobDetail, JobList, LogTail, Metrics, OutputFile
from nocodetune.records.job import read_resolved
from nocodetune.records.schema import JobConfig
from nocodetune.config.validate import ValidationReport
from nocodetune.errors import NocodetuneError
from nocodetune.jobs.preflight import validate_in_worker, validator
from nocodetune.jobs.spec import JobSpec
from nocodetune.jobs.service import JobService
from nocodetune.jobs.status import JobStatus
from nocodetune.workspace import Workspace

router = APIRouter(responses=API_ERRORS)
CONFLICT = error_responses(409)


# -- bases and schema --------------------------------------------------------------------


@router.get("/bases", response_model=list[BaseInfo])
def list_bases(ws: Workspace = Depends(workspace)) -> list[BaseInfo]:
    """Every base job in archive/, with its effective config (schema defaults ← base chain)."""
    from nocodetune.config.inherit import available_bases, load_base_chain, resolve_config

    out = []
    for name in available_bases(ws):
        try:
            config = resolve_config(ws, base=name).config
            # resolve_config drops base descriptions (they describe the recipe, not a job); show the nearest one
            described = [layer.get("description") for _, layer in load_base_chain(ws, name) if layer.get("description")]
        except NocodetuneError as exc:  # one broken base must not hide the others from the New-job form
            out.append(BaseInfo(name=name, description="", config={}, error=exc.to_dict()))
            continue
        out.append(BaseInfo(name=name, description=str(described[-1]).strip() if described else "", config=config.model_dump(mode="json")))
    return out


@router.get("/schema")
def job_schema() -> dict[str, Any]:
    """JSON schema of the job config (the form the UI builds, the keys job.yaml accepts)."""
    return JobConfig.model_json_schema()


# -- collection ----------------------------------------------------------------------------


@router.get("/jobs", response_model=JobList)
def list_jobs(
    status: str | None = Query(None, description="Comma list of statuses."),
    base: str | None = None,
    q: str | None = Query(None, description="Substring of the name or description."),
    offset: int = Query(0, ge=0, le=2**31 - 1),
    limit: int = Query(50, ge=1, le=500),
    service: JobService = Depends(job_service),
) -> JobList:
    if status:
        bad = [s for s in status.split(",") if s.strip() and s.strip() not in JobStatus.__members__]
        if bad:
            raise NocodetuneError(f"unknown status {bad[0]!r}; use one of {', '.join(JobStatus.__members__)}", field="status")
    rows, total = service.list(status=status, base=base, q=q, offset=offset, limit=limit)
    return JobList(items=[views.summary(r) for r in rows], total=total, offset=offset, limit=limit)


@router.post("/jobs", response_model=JobDetail, status_code=201, responses=CONFLICT)
def create(body: CreateJobRequest, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> JobDetail:
    from nocodetune.jobs.create import create_job

    create_job(ws, JobSpec(**body.model_dump(exclude={"run"})))
    if body.run:
        service.submit(body.name)
    return views.detail(ws, service.get(body.name))


@router.post("/jobs/validate", response_model=ValidationReport)
def validate_spec(body: JobSpec, ws: Workspace = Depends(workspace)) -> ValidationReport:
    """Pre-flight checks of a job that is not created yet; creates nothing.

    Runs in the API's warm validation worker; `stats.warming_up` is true when the request
    had to wait for the worker to start (the first one after the API starts).
    """
    from nocodetune.jobs.create import plan_job

    return validate_in_worker(ws, plan_job(ws, body), None)


# -- one job -------------------------------------------------------------------------------


@router.get("/jobs/{name}", response_model=JobDetail)
def get_job(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> JobDetail:
    return views.detail(ws, service.get(name))


class ValidatorState(BaseModel):
    ready: bool = Field(description="False while the validation worker is still starting (the first validation then takes longer).")


@router.get("/validator", response_model=ValidatorState)
def validator_state() -> ValidatorState:
    return ValidatorState(ready=validator().ready)


@router.post("/jobs/{name}/validate", response_model=ValidationReport)
def validate_job(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> ValidationReport:
    service.get(name)  # 404 first
    paths = ws.job(name)
    return validate_in_worker(ws, read_resolved(paths), paths.root)


@router.post("/jobs/{name}/run", response_model=JobDetail, status_code=202, responses=CONFLICT)
def run_job(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> JobDetail:
    return views.detail(ws, service.submit(name))


@router.post("/jobs/{name}/resume", response_model=JobDetail, status_code=202, responses=CONFLICT)
def resume_job(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> JobDetail:
    return views.detail(ws, service.resume(name))


@router.post("/jobs/{name}/cancel", response_model=JobDetail, status_code=202, responses=CONFLICT)
def cancel_job(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> JobDetail:
    """Queued: cancelled at once. Running: asked to checkpoint and stop (status follows)."""
    return views.detail(ws, service.cancel(name))


@router.post("/jobs/{name}/pause", response_model=JobDetail, status_code=202, responses=CONFLICT)
def pause_job(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> JobDetail:
    """Like cancel (a checkpoint is saved), but the job ends `paused`; resume continues it."""
    return views.detail(ws, service.pause(name))


@router.post("/jobs/{name}/clone", response_model=JobDetail, status_code=201, responses=CONFLICT)
def clone(name: str, body: CloneJobRequest, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> JobDetail:
    from nocodetune.jobs.create import clone_job

    service.get(name)
    clone_job(ws, name, body.name, overrides=body.overrides, set_values=body.set, description=body.description)
    if body.run:
        service.submit(body.name)
    return views.detail(ws, service.get(body.name))


@router.delete("/jobs/{name}", response_model=DeleteResult, responses=CONFLICT)
def delete(name: str, force: bool = False, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> DeleteResult:
    from nocodetune.jobs.create import delete_job
    from nocodetune.jobs.registry import sync_jobs

    if service.get(name).status == JobStatus.queued.value:
        service.cancel(name)
    children = delete_job(ws, name, force=force)
    sync_jobs(ws)
    return DeleteResult(deleted=name, orphaned_children=children)


@router.get("/jobs/{name}/logs", response_model=LogTail)
def logs(
    name: str,
    tail: int = Query(200, ge=0, le=100_000),
    run: int | None = Query(None, ge=1, le=1_000_000, description="Run number; default the latest."),
    ws: Workspace = Depends(workspace),
    service: JobService = Depends(job_service),
) -> LogTail:
    service.get(name)
    number, file, lines = views.log_tail(ws, name, run, tail)
    return LogTail(run=number, file=file, lines=lines)


@router.get("/jobs/{name}/events", response_class=StreamingResponse, responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}})
def events(
    name: str,
    request: Request,
    after: int | None = Query(None, ge=0, le=2**62, description="Byte offset (an event id) to continue after."),
    last_event_id: str | None = Header(None),
    service: JobService = Depends(job_service),
) -> StreamingResponse:
    """Server-Sent Events from logs/events.jsonl; closes once the job is no longer active."""
    service.get(name)
    job_file(service.ws, name, service.ws.job(name).events)  # a planted link is refused, never streamed
    start = after if after is not None else (int(last_event_id) if last_event_id and last_event_id.isdigit() else 0)
    return StreamingResponse(
        stream_events(service, name, start),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@router.get("/jobs/{name}/metrics", response_model=Metrics)
def metrics(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> Metrics:
    service.get(name)
    return views.metrics(ws, name)


@router.get("/jobs/{name}/samples")
def samples(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> list[dict[str, Any]]:
    service.get(name)
    return views.samples(ws, name)


@router.get("/jobs/{name}/outputs", response_model=list[OutputFile])
def outputs(name: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> list[OutputFile]:
    service.get(name)
    return views.output_files(ws, name)


@router.get("/jobs/{name}/outputs/{path:path}", response_class=FileResponse, responses={200: {"content": {"application/octet-stream": {}}, "description": "The file"}})
def download_output(name: str, path: str, ws: Workspace = Depends(workspace), service: JobService = Depends(job_service)) -> FileResponse:
    service.get(name)
    target = views.output_path(ws, name, path)
    return FileResponse(target, filename=target.name)
