"""Request and response bodies of the jobs routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nocodetune.jobs.spec import JobSpec


class CreateJobRequest(JobSpec):
    run: bool = Field(False, description="Queue the job right after creating it.")


class CloneJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Name of the new job.")
    overrides: dict[str, Any] = Field(default_factory=dict, description="Nested config sections to change in the clone.")
    set: dict[str, Any] = Field(default_factory=dict, description="Dotted settings to change: {'training.learning_rate': 1e-4}.")
    description: str | None = None
    run: bool = False


class Progress(BaseModel):
    step: int | None = None
    total_steps: int | None = None
    loss: float | None = None
    progress: float | None = Field(None, description="0..1")
    eta_seconds: float | None = None
    tokens_per_second: float | None = None


class JobSummary(BaseModel):
    name: str
    base: str | None = None
    parent: str | None = None
    description: str = ""
    status: str
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    progress: Progress
    error: str | None = None
    error_kind: str | None = None
    run: int | None = Field(None, description="Number of the current (or last) run.")
    cancel_requested: bool = False


class JobList(BaseModel):
    items: list[JobSummary]
    total: int
    offset: int
    limit: int


class RunInfo(BaseModel):
    n: int
    executor: str
    pid: int | None = None
    gpu: str | None = None
    status: str
    exit_code: int | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    log_file: str | None = None
    world_size: int = Field(1, description="Training processes of this run (all nodes).")
    executor_ref: str | None = Field(None, description="The executor's own id of the run (the Ray submission id).")
    executor_address: str | None = Field(None, description="Where that executor is reached (the Ray cluster's job-submission address).")


class Worker(BaseModel):
    """One training process of the latest run, as its `started` event lists them."""

    rank: int
    local_rank: int = 0
    host: str | None = None
    pid: int | None = None
    node: str | None = Field(None, description="Ray node id (first 12 characters) when the run is on Ray.")


class Lineage(BaseModel):
    base: str | None = None
    base_chain: list[str] = Field(default_factory=list)
    parent: str | None = None
    parent_chain: list[str] = Field(default_factory=list)
    children: list[str] = Field(default_factory=list)


class JobDetail(JobSummary):
    config: dict[str, Any]
    sources: dict[str, str]
    lineage: Lineage
    datasets: list[dict[str, Any]]
    runs: list[RunInfo]
    executor: str = Field("local", description="What runs the job: 'local' (processes on this machine) or 'ray'.")
    world_size: int = Field(1, description="Training processes of the current (or last) run; before any run, what the resources plan gives.")
    workers: list[Worker] = Field(default_factory=list, description="The latest run's training processes (rank, host, pid, Ray node).")
    model_path: str | None = Field(None, description="outputs/model, outputs/adapter or outputs/merged once training saved one.")


class BaseInfo(BaseModel):
    name: str
    description: str
    config: dict[str, Any]
    error: dict[str, Any] | None = Field(None, description="Set when the base cannot be used (e.g. a broken job.yaml): the error in the API's error shape; config is then empty.")


class DeleteResult(BaseModel):
    deleted: str
    orphaned_children: list[str]


class LogTail(BaseModel):
    run: int | None
    file: str | None
    lines: list[str]


class OutputFile(BaseModel):
    path: str = Field(description="Relative to the job's outputs/ folder.")
    size: int
    modified: datetime


class Metrics(BaseModel):
    metrics: dict[str, Any] | None = Field(None, description="outputs/metrics.json once the job finished.")
    history: list[dict[str, Any]] = Field(default_factory=list, description="log and eval events of the latest run, for charts.")
