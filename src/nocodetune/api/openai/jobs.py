"""`/v1/fine_tuning/jobs`: create, list, retrieve, cancel, pause, resume; events and checkpoints.

Plain `def` handlers: they read records and the registry, so FastAPI runs them in its
thread pool.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request

from nocodetune.api.openai.errors import V1_ERRORS, OpenAIError, OpenAIRoute
from nocodetune.api.openai.models import (
    Checkpoint,
    CheckpointList,
    CreateJobRequest,
    EventList,
    FineTuningJob,
    JobEvent,
    JobList,
)
from nocodetune.api.openai.state import OpenAIState, openai_state
from nocodetune.jobs.openai_jobs import page
from nocodetune.records.openai import Hyperparameters

router = APIRouter(route_class=OpenAIRoute, responses=V1_ERRORS)


@router.post("/fine_tuning/jobs", response_model=FineTuningJob)
def create_job(body: CreateJobRequest, state: OpenAIState = Depends(openai_state)) -> FineTuningJob:
    """A NoCodeTune job on the lora_train base; answered as `validating_files` while the pre-flight runs."""
    method = body.method.type if body.method else "supervised"
    if method == "reinforcement":
        raise OpenAIError(400, "reinforcement fine-tuning is not supported here; use method supervised or dpo", param="method.type", code="unsupported_value")
    if body.integrations:
        raise OpenAIError(
            400, "integrations are not supported: NoCodeTune reports to no outside service (see the job's events and loss curve instead)",
            param="integrations", code="unsupported_parameter",
        )  # fmt: skip
    sub = getattr(body.method, method, None) if body.method else None
    given = sub.hyperparameters if sub is not None else None
    if given is not None and body.hyperparameters is not None:
        raise OpenAIError(400, f"give hyperparameters either under method.{method} or at the top level, not both", param="hyperparameters", code="invalid_value")
    chosen = given or body.hyperparameters
    view = state.jobs.create(
        model=body.model,
        training_file=body.training_file,
        validation_file=body.validation_file,
        suffix=body.suffix,
        seed=body.seed,
        metadata=body.metadata,
        method=method,
        hyperparameters=Hyperparameters(**chosen.model_dump()) if chosen is not None else None,
    )
    return FineTuningJob.of(view)


@router.get("/fine_tuning/jobs", response_model=JobList)
def list_jobs(
    request: Request,
    after: str | None = None,
    limit: int = Query(20, ge=1, le=1000),
    state: OpenAIState = Depends(openai_state),
) -> JobList:
    """Newest first; `metadata[key]=value` query parameters keep the jobs whose metadata holds them."""
    metadata = {k[len("metadata[") : -1]: v for k, v in request.query_params.items() if k.startswith("metadata[") and k.endswith("]")}
    records, more = page(state.jobs.list(metadata=metadata or None), lambda r: r.id, after, limit)
    return JobList(data=[FineTuningJob.of(state.jobs.describe(r.id)) for r in records], has_more=more)


@router.get("/fine_tuning/jobs/{job_id}", response_model=FineTuningJob)
def retrieve_job(job_id: str, state: OpenAIState = Depends(openai_state)) -> FineTuningJob:
    return FineTuningJob.of(state.jobs.describe(job_id))


@router.post("/fine_tuning/jobs/{job_id}/cancel", response_model=FineTuningJob)
def cancel_job(job_id: str, state: OpenAIState = Depends(openai_state)) -> FineTuningJob:
    return FineTuningJob.of(state.jobs.cancel(job_id))


@router.post("/fine_tuning/jobs/{job_id}/pause", response_model=FineTuningJob)
def pause_job(job_id: str, state: OpenAIState = Depends(openai_state)) -> FineTuningJob:
    """A running job saves a checkpoint and ends `paused`; resume continues from it."""
    return FineTuningJob.of(state.jobs.pause(job_id))


@router.post("/fine_tuning/jobs/{job_id}/resume", response_model=FineTuningJob)
def resume_job(job_id: str, state: OpenAIState = Depends(openai_state)) -> FineTuningJob:
    return FineTuningJob.of(state.jobs.resume(job_id))


@router.get("/fine_tuning/jobs/{job_id}/events", response_model=EventList)
def list_events(job_id: str, after: str | None = None, limit: int = Query(20, ge=1, le=10000), state: OpenAIState = Depends(openai_state)) -> EventList:
    items, more = page(state.jobs.events(job_id), lambda e: e.id, after, limit)
    return EventList(data=[JobEvent.of(e) for e in items], has_more=more)


@router.get("/fine_tuning/jobs/{job_id}/checkpoints", response_model=CheckpointList)
def list_checkpoints(job_id: str, after: str | None = None, limit: int = Query(10, ge=1, le=1000), state: OpenAIState = Depends(openai_state)) -> CheckpointList:
    items, more = page(state.jobs.checkpoints(job_id), lambda c: c.id, after, limit)
    data = [Checkpoint.of(job_id, c) for c in items]
    return CheckpointList(data=data, has_more=more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None)
