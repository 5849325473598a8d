"""Request and response bodies of the `/v1` routes, in OpenAI's shapes (checked against the
`openai` SDK's own types in tests/openai)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, model_validator

from nocodetune.jobs.openai_jobs import CheckpointItem, EventItem, JobView, ModelItem
from nocodetune.records.openai import FileRecord, Hyperparameters, JobError

ORGANIZATION = "nocodetune"

# -- files ----------------------------------------------------------------------------------


class FileObject(BaseModel):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"] = "processed"
    status_details: str | None = None
    expires_at: int | None = None

    @classmethod
    def of(cls, record: FileRecord) -> FileObject:
        return cls(id=record.id, bytes=record.bytes, created_at=record.created_at, filename=record.filename, purpose=record.purpose)


class FileList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FileObject]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


class FileDeleted(BaseModel):
    id: str
    object: Literal["file"] = "file"
    deleted: bool = True


# -- jobs: requests ---------------------------------------------------------------------------


class _Forbid(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DpoHyperparameters(Hyperparameters):
    """n_epochs, batch_size, learning_rate_multiplier and beta: 'auto' or a value in OpenAI's range."""


class SupervisedHyperparameters(Hyperparameters):
    """As for DPO, without beta."""

    @model_validator(mode="after")
    def _no_beta(self) -> SupervisedHyperparameters:
        if self.beta is not None:
            raise ValueError("beta is a DPO hyperparameter; give it under method.dpo.hyperparameters")
        return self


class SupervisedMethodRequest(_Forbid):
    hyperparameters: SupervisedHyperparameters | None = None


class DpoMethodRequest(_Forbid):
    hyperparameters: DpoHyperparameters | None = None


class MethodRequest(_Forbid):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethodRequest | None = None
    dpo: DpoMethodRequest | None = None
    reinforcement: dict[str, Any] | None = None


class CreateJobRequest(_Forbid):
    """`POST /v1/fine_tuning/jobs`. Unknown fields are refused, never ignored."""

    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    validation_file: str | None = None
    suffix: str | None = None
    seed: StrictInt | None = None
    metadata: dict[str, str] | None = None
    hyperparameters: SupervisedHyperparameters | None = Field(None, description="Deprecated by OpenAI in favour of method.<type>.hyperparameters; accepted.")
    method: MethodRequest | None = None
    integrations: list[dict[str, Any]] | None = Field(None, description="Refused when not empty: NoCodeTune reports to no outside service.")

    @model_validator(mode="after")
    def _method_shape(self) -> CreateJobRequest:
        if self.method is None:
            return self
        kind = self.method.type
        for other in ("supervised", "dpo", "reinforcement"):
            if other != kind and getattr(self.method, other) is not None:
                raise ValueError(f"method.{other} is given but method.type is {kind!r}")
        return self


# -- jobs: responses ----------------------------------------------------------------------------


class JobHyperparameters(BaseModel):
    batch_size: Literal["auto"] | int | None = None
    learning_rate_multiplier: Literal["auto"] | float | None = None
    n_epochs: Literal["auto"] | int | float | None = None


class DpoJobHyperparameters(JobHyperparameters):
    beta: Literal["auto"] | float | None = None


class SupervisedMethod(BaseModel):
    hyperparameters: JobHyperparameters | None = None


class DpoMethod(BaseModel):
    hyperparameters: DpoJobHyperparameters | None = None


class Method(BaseModel):
    type: Literal["supervised", "dpo"]
    supervised: SupervisedMethod | None = None
    dpo: DpoMethod | None = None


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    created_at: int
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    hyperparameters: JobHyperparameters
    model: str
    organization_id: str = ORGANIZATION
    result_files: list[str] = Field(default_factory=list)
    seed: int
    status: str = Field(description="validating_files, queued, running, succeeded, failed, cancelled, or paused")
    trained_tokens: int | None = None
    training_file: str
    validation_file: str | None = None
    estimated_finish: int | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: Method
    user_provided_suffix: str | None = None

    @classmethod
    def of(cls, view: JobView) -> FineTuningJob:
        record = view.record
        used = record.used
        hp = JobHyperparameters(batch_size=used.batch_size, learning_rate_multiplier=used.learning_rate_multiplier, n_epochs=used.n_epochs)
        if record.method == "dpo":
            method = Method(type="dpo", dpo=DpoMethod(hyperparameters=DpoJobHyperparameters(**hp.model_dump(), beta=used.beta)))
        else:
            method = Method(type="supervised", supervised=SupervisedMethod(hyperparameters=hp))
        return cls(
            id=record.id, created_at=record.created_at, error=view.error, fine_tuned_model=view.fine_tuned_model, finished_at=view.finished_at,
            hyperparameters=hp, model=record.model, seed=record.seed, status=view.status, trained_tokens=view.trained_tokens,
            training_file=record.training_file, validation_file=record.validation_file, estimated_finish=view.estimated_finish,
            metadata=record.metadata, method=method, user_provided_suffix=record.suffix,
        )  # fmt: skip


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[FineTuningJob]
    has_more: bool = False


class JobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"]
    data: dict[str, Any] | None = None

    @classmethod
    def of(cls, item: EventItem) -> JobEvent:
        return cls(**item.model_dump())


class EventList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobEvent]
    has_more: bool = False


class CheckpointMetrics(BaseModel):
    step: float | None = None
    train_loss: float | None = None
    train_mean_token_accuracy: float | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None
    full_valid_loss: float | None = None
    full_valid_mean_token_accuracy: float | None = None


class Checkpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    step_number: int

    @classmethod
    def of(cls, job_id: str, item: CheckpointItem) -> Checkpoint:
        return cls(
            id=item.id, created_at=item.created_at, fine_tuned_model_checkpoint=item.fine_tuned_model_checkpoint,
            fine_tuning_job_id=job_id, metrics=CheckpointMetrics(**item.metrics), step_number=item.step,
        )  # fmt: skip


class CheckpointList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Checkpoint]
    has_more: bool = False
    first_id: str | None = None
    last_id: str | None = None


# -- models ---------------------------------------------------------------------------------------


class Model(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str

    @classmethod
    def of(cls, item: ModelItem) -> Model:
        return cls(**item.model_dump())


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Model]

