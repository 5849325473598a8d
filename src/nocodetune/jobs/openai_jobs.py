"""The OpenAI fine-tuning API's meaning in NoCodeTune terms: file id ↔ dataset version,
OpenAI job ↔ NoCodeTune job.

An uploaded file is checked with the one rows → examples path (`data.examples`) and added
through the dataset store, so it is an ordinary dataset version (UI, CLI). A fine-tuning
job is an ordinary job created from a `JobSpec` on the `lora_train` base (objective `dpo`
for method dpo), named by its OpenAI id. Its files are validated by the existing
pre-flight (`jobs.preflight.validate_in_worker`, the API never imports torch) in a
background thread, which is OpenAI's `validating_files`; then the job is queued on the
job service. Every OpenAI view (status, error, events, checkpoints, trained tokens) is
computed here from the job's records (`records.events`, `records.openai`), never kept
anywhere else.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field

from nocodetune import db
from nocodetune.config.validate import ValidationReport, world_size
from nocodetune.data.examples import build_examples
from nocodetune.data.readers import read_file
from nocodetune.data.staging import StagedFile
from nocodetune.data.store import DatasetStore
from nocodetune.errors import ConflictError, NocodetuneError, NotFoundError
from nocodetune.jobs.preflight import validate_in_worker
from nocodetune.jobs.registry import get_row
from nocodetune.jobs.service import JobService
from nocodetune.jobs.status import JobStatus
from nocodetune.model_source import (
    DEFAULT_MODEL_NAME,
    default_gguf_path,
    resolve_model,
    section_for_identity,
)
from nocodetune.records.events import Event, read_events_with_offsets
from nocodetune.records.job import ResolvedJob, read_resolved
from nocodetune.records.openai import (
    JOB_ID_RE,
    FileRecord,
    Hyperparameters,
    JobError,
    JobRecord,
    MethodType,
    UsedHyperparameters,
    find_file_record,
    list_file_records,
    list_job_records,
    new_file_id,
    new_job_id,
    read_job_record,
    records_of_version,
    remove_file_record,
    write_file_record,
    write_job_record,
)
from nocodetune.records.schema import MAX_SEED, DatasetSection
from nocodetune.workspace import Workspace

log = logging.getLogger(__name__)

BASE_JOB = "lora_train"
FILE_PURPOSE = "fine-tune"
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
MAX_SUFFIX = 64
OPENAI_SEED_MAX = 2**31 - 1  # OpenAI generates seeds in this range
Validator = Callable[[Workspace, ResolvedJob, Path | None], ValidationReport]
T = TypeVar("T")


class RefusedRequest(NocodetuneError):
    """A request OpenAI would refuse with a 400: `field` is OpenAI's `param`, `code` its error code."""

    status_code = 400

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, field=param, hint=hint)
        self.code = code


# -- shared helpers -------------------------------------------------------------------------

# NoCodeTune config keys → the OpenAI request field a user would change instead.
_PARAMS: tuple[tuple[str, str], ...] = (
    ("dataset", "training_file"),
    ("model", "model"),
    ("training.num_train_epochs", "hyperparameters.n_epochs"),
    ("training.max_steps", "hyperparameters.n_epochs"),
    ("training.per_device_train_batch_size", "hyperparameters.batch_size"),
    ("training.gradient_accumulation_steps", "hyperparameters.batch_size"),
    ("training.learning_rate", "hyperparameters.learning_rate_multiplier"),
    ("training.seed", "seed"),
    ("preference.beta", "method.dpo.hyperparameters.beta"),
)


def openai_param(field: str | None) -> str | None:
    """The OpenAI request field a NoCodeTune error field stands for (unchanged when none does)."""
    if field is None:
        return None
    for prefix, param in _PARAMS:
        if field == prefix or field.startswith(prefix + "."):
            return param
    return field


def page(items: Sequence[T], ident: Callable[[T], str], after: str | None, limit: int) -> tuple[list[T], bool]:
    """OpenAI cursor pagination: the `limit` items after the one whose id is `after`, and has_more."""
    start = 0
    if after:
        ids = [ident(item) for item in items]
        if after not in ids:
            raise RefusedRequest(f"no object {after!r} in this list", param="after", code="invalid_cursor")
        start = ids.index(after) + 1
    chunk = list(items[start : start + limit])
    return chunk, start + limit < len(items)


def _now() -> int:
    return int(time.time())


def _stamp(value: Any) -> int | None:
    as_utc = db.as_utc(value)
    return int(as_utc.timestamp()) if as_utc is not None else None


# -- files ----------------------------------------------------------------------------------


class OpenAIFiles:
    """`/v1/files`: uploads that become dataset versions, addressed by file id."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.store = DatasetStore(ws)
        self._lock = threading.Lock()  # an upload of the same bytes and a delete must not cross

    def upload(self, staged: StagedFile, purpose: str | None) -> FileRecord:
        """Check the staged upload as OpenAI does (JSONL, chat or preference lines), then add it to the store."""
        from nocodetune.jobs.create import dataset_name_for

        try:
            if purpose != FILE_PURPOSE:
                raise RefusedRequest(
                    f"purpose {purpose!r} is not supported: NoCodeTune keeps files for fine-tuning (purpose 'fine-tune')" if purpose else "purpose is required ('fine-tune')",
                    param="purpose",
                    code="invalid_purpose",
                )
            name = staged.original_filename
            if staged.format != "jsonl":
                raise RefusedRequest(f"Invalid file format for Fine-Tuning API: {name} must be a .jsonl file", param="file", code="invalid_file_format")
            staged.finish()
            table = read_file(staged.path, fmt="jsonl", display=name)  # the one reader; errors name the line
            found = build_examples(table.rows, DatasetSection(), table.columns)  # the one rows → examples path
            if found.format not in ("messages", "preference"):
                raise RefusedRequest(
                    f"{name}: each line must be a chat example {{\"messages\": [...]}} or a preference example "
                    f"{{\"input\": {{\"messages\": [...]}}, \"preferred_output\": [...], \"non_preferred_output\": [...]}}; "
                    f"its lines have the keys {', '.join(table.columns)}",
                    param="file",
                    code="invalid_file_format",
                )
            if found.refused:  # the same message validate and training give for these rows
                raise RefusedRequest(f"{name}: {found.refusal_summary()}", param="file", code="invalid_file_format")
            with self._lock:
                added = self.store.add_staged(staged, dataset_name_for(Path(name)), tags=["openai"])
                now = time.time()
                record = FileRecord(
                    id=new_file_id(), filename=name, bytes=added.meta.size_bytes, created_at=int(now), created_time=now, purpose=FILE_PURPOSE,
                    dataset=added.meta.name, version=added.meta.version, data_format=found.format, created_version=added.created,  # type: ignore[arg-type]
                )
                write_file_record(self.ws, record)
            return record
        except NocodetuneError as exc:
            if not isinstance(exc, RefusedRequest) and exc.field in (None, "dataset.ref", "dataset.columns"):
                exc.field = "file"  # for the client, the problem is the file it sent
            raise
        finally:
            staged.discard()

    def get(self, file_id: str) -> FileRecord:
        record = find_file_record(self.ws, file_id)
        if record is None:
            raise NotFoundError(f"No such File object: {file_id}", field="file_id")
        return record

    def list(self, *, purpose: str | None = None, order: Literal["asc", "desc"] = "desc") -> list[FileRecord]:
        records = [r for r in list_file_records(self.ws) if purpose is None or r.purpose == purpose]
        return records if order == "asc" else records[::-1]

    def content(self, file_id: str) -> tuple[FileRecord, Path]:
        record = self.get(file_id)
        return record, self.store.path(record.dataset, record.version)

    def delete(self, file_id: str) -> FileRecord:
        """Forget the id; the dataset version goes too when this upload made it and no other id names it.

        Jobs keep their own copy of their data, so a version a job trained on may go
        (OpenAI lets a file be deleted after a job used it).
        """
        with self._lock:
            record = self.get(file_id)
            remove_file_record(self.ws, record)
            if record.created_version and not records_of_version(self.ws, record.dataset, record.version):
                try:
                    self.store.delete_version(record.dataset, record.version, force=True)
                except NotFoundError:
                    pass  # deleted meanwhile by someone else
            return record


# -- jobs: what the faces get -----------------------------------------------------------------


class JobView(BaseModel):
    """A job as OpenAI describes it, computed from its records."""

    record: JobRecord
    status: str
    error: JobError | None = None
    fine_tuned_model: str | None = None
    finished_at: int | None = None
    trained_tokens: int | None = None
    estimated_finish: int | None = None


class EventItem(BaseModel):
    id: str
    created_at: int
    level: Literal["info", "warn", "error"] = "info"
    message: str
    type: Literal["message", "metrics"] = "message"
    data: dict[str, Any] | None = None


class CheckpointItem(BaseModel):
    id: str
    created_at: int
    step: int
    metrics: dict[str, float] = Field(default_factory=dict)
    fine_tuned_model_checkpoint: str


class ModelItem(BaseModel):
    id: str
    created: int
    owned_by: str


class ChatTarget(BaseModel):
    """What serves a model name: a job's trained output, or a base model."""

    job: str | None = None
    model: str | None = Field(None, description="model.source of a base model.")

    @property
    def key(self) -> tuple[str, str]:
        return ("job", self.job) if self.job else ("model", str(self.model))


# Failure kinds of the job service → OpenAI's error code and param.
_KIND_ERRORS: dict[str | None, tuple[str, str | None]] = {
    "data": ("invalid_training_file", "training_file"),
    "config": ("invalid_job_config", None),
    "model": ("model_load_failed", "model"),
    "oom": ("out_of_memory", None),
    "nan": ("loss_not_finite", None),
    "killed": ("interrupted", None),
}


def openai_status(row_status: str, record: JobRecord) -> str:
    """The one rule from a job's status and its OpenAI record to OpenAI's status."""
    if record.cancelled_at is not None and row_status in (JobStatus.created.value, JobStatus.paused.value):
        return "cancelled"
    if row_status == JobStatus.created.value:
        return {"pending": "validating_files", "failed": "failed", "passed": "queued"}[record.validation]
    return row_status


def fine_tuned_model_name(record: JobRecord) -> str:
    """`ft:<base>:<suffix>:<id>` (the suffix part empty when none was given, as OpenAI does)."""
    return f"ft:{record.base_model}:{record.suffix or ''}:{record.short_id}"


class OpenAIJobs:
    """`/v1/fine_tuning/jobs` over the job service."""

    def __init__(self, ws: Workspace, service: JobService, *, validate: Validator = validate_in_worker) -> None:
        self.ws = ws
        self.service = service
        self.validate = validate
        self._lock = threading.RLock()
        self._queue: queue.Queue[str | None] | None = None
        self._validating: set[str] = set()

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> None:
        """Validate jobs a stopped API left half-way, and queue those it validated but never queued."""
        self._queue = queue.Queue()
        # a daemon: a validation in progress never holds up the API's exit (the next start validates again)
        threading.Thread(target=self._work, args=(self._queue,), name="openai-validate", daemon=True).start()
        for record in list_job_records(self.ws):
            try:
                row_status = self.service.get(record.id).status
            except NocodetuneError:
                continue
            if row_status != JobStatus.created.value:
                continue
            if record.cancelled_at is not None:
                self._settle_created(record.id, JobStatus.cancelled.value)
            elif record.validation == "pending":
                self._enqueue(record.id)
            elif record.validation == "failed":
                self._settle_created(record.id, JobStatus.failed.value, record.error.message if record.error else None, "config")
            else:
                self._submit(record.id)

    def stop(self) -> None:
        with self._lock:
            if self._queue is not None:
                self._queue.put(None)
                self._queue = None
                self._validating.clear()

    def _work(self, jobs: queue.Queue[str | None]) -> None:
        while (job_id := jobs.get()) is not None and self._queue is jobs:  # a stopped service leaves the rest to its next start
            self._validate_job(job_id)

    # -- creation ---------------------------------------------------------------------------
    def create(
        self,
        *,
        model: str,
        training_file: str,
        validation_file: str | None = None,
        suffix: str | None = None,
        seed: int | None = None,
        metadata: dict[str, str] | None = None,
        method: MethodType = "supervised",
        hyperparameters: Hyperparameters | None = None,
    ) -> JobView:
        """Create the NoCodeTune job (refusing bad input with OpenAI's 400s) and start validating its files."""
        from nocodetune.jobs.create import create_job
        from nocodetune.jobs.spec import JobSpec

        hp = hyperparameters or Hyperparameters()
        self._check_request(method, hp, suffix, seed, metadata, validation_file)
        training = find_file_record(self.ws, training_file)
        if training is None:
            raise RefusedRequest(f"invalid training_file: {training_file} (no such file)", param="training_file", code="invalid_training_file")
        wanted = "preference" if method == "dpo" else "messages"
        if training.data_format != wanted:
            held = "preference pairs" if training.data_format == "preference" else "chat conversations"
            raise RefusedRequest(
                f"training_file {training_file} holds {held}, but method {method} trains on "
                + ("preference pairs (input, preferred_output, non_preferred_output)" if method == "dpo" else "chat conversations (messages)"),
                param="training_file",
                code="invalid_training_file",
                hint="use method dpo for preference pairs, supervised for chat conversations",
            )
        source, base_model = self._model_source(model)
        config = self._base_config()
        values: dict[str, Any] = {"model.source": source, "training.seed": seed if seed is not None else secrets.randbelow(OPENAI_SEED_MAX + 1)}
        if isinstance(hp.n_epochs, int):
            values.update({"training.num_train_epochs": hp.n_epochs, "training.max_steps": -1})
        if isinstance(hp.batch_size, int):
            values.update({"training.per_device_train_batch_size": hp.batch_size, "training.gradient_accumulation_steps": 1})
        if isinstance(hp.learning_rate_multiplier, float):
            values["training.learning_rate"] = config.training.learning_rate * hp.learning_rate_multiplier
        if method == "dpo":
            values["objective"] = "dpo"
            if isinstance(hp.beta, float):
                values["preference.beta"] = hp.beta
        job_id = new_job_id()
        spec = JobSpec(
            name=job_id,
            base=BASE_JOB,
            dataset=training.ref,
            description=f"OpenAI fine-tuning job: {model} on {training_file}" + (f" (suffix {suffix})" if suffix else ""),
            set=values,
        )
        resolved = create_job(self.ws, spec)
        trained = resolved.config
        used = UsedHyperparameters(
            n_epochs=int(trained.training.num_train_epochs) if float(trained.training.num_train_epochs).is_integer() else trained.training.num_train_epochs,
            batch_size=trained.training.per_device_train_batch_size * trained.training.gradient_accumulation_steps * world_size(trained),
            learning_rate_multiplier=round(trained.training.learning_rate / config.training.learning_rate, 6),
            beta=trained.preference.beta if method == "dpo" else None,
        )
        now = time.time()
        record = JobRecord(
            id=job_id, created_at=int(now), created_time=now, model=model, base_model=base_model, training_file=training_file, suffix=suffix,
            seed=values["training.seed"], metadata=metadata, method=method, hyperparameters=hp, used=used,
        )  # fmt: skip
        write_job_record(self.ws.job(job_id), record)
        view = self.describe(job_id)  # validating_files: answered before the validation can finish
        self._enqueue(job_id)
        return view

    @staticmethod
    def _check_request(method: str, hp: Hyperparameters, suffix: str | None, seed: int | None, metadata: dict[str, str] | None, validation_file: str | None) -> None:
        if validation_file:
            raise RefusedRequest(
                "validation_file is not supported: NoCodeTune holds out training.eval_split of the training file "
                "(10% by default in lora_train) and reports valid_loss from it",
                param="validation_file",
                code="unsupported_parameter",
                hint="leave validation_file out, or add its lines to the training file",
            )
        if hp.beta is not None and method != "dpo":
            raise RefusedRequest("beta is a DPO hyperparameter; use method dpo", param="hyperparameters.beta", code="invalid_value")
        if suffix is not None and (not 1 <= len(suffix) <= MAX_SUFFIX or not suffix.isascii() or not all(c.isalnum() or c in "-_." for c in suffix)):
            raise RefusedRequest(f"suffix must be 1-{MAX_SUFFIX} letters, digits, '-', '_' or '.', got {suffix!r}", param="suffix", code="invalid_value")
        if seed is not None and (isinstance(seed, bool) or not 0 <= seed <= MAX_SEED):
            raise RefusedRequest(f"seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}", param="seed", code="invalid_value")
        if metadata is not None:
            if len(metadata) > MAX_METADATA_KEYS:
                raise RefusedRequest(f"metadata holds {len(metadata)} keys; at most {MAX_METADATA_KEYS} are allowed", param="metadata", code="invalid_value")
            for key, value in metadata.items():
                if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
                    raise RefusedRequest(
                        f"metadata key {key[:20]!r}: keys are at most {MAX_METADATA_KEY} characters, values at most {MAX_METADATA_VALUE}",
                        param=f"metadata.{key[:64]}",
                        code="invalid_value",
                    )

    def _model_source(self, model: str) -> tuple[str, str]:
        """(model.source, public name) of a model the workspace can load; a 400 naming `model` otherwise."""
        if model.startswith("ft:"):
            raise RefusedRequest(
                f"fine-tuning a fine-tuned model ({model}) is not supported here",
                param="model",
                code="model_not_available",
                hint=f"fine-tune its base model instead, or continue it in NoCodeTune as a child job (`nocodetune job create --parent {self._job_of(model) or 'JOB'}`)",
            )
        section = section_for_identity(model)
        try:
            resolved = resolve_model(section)
        except NocodetuneError as exc:
            raise RefusedRequest(f"model {model!r} is not available for fine-tuning: {exc.message}", param="model", code="model_not_available", hint=exc.hint) from None
        return section.source, resolved.display_name

    def _base_config(self) -> Any:
        from nocodetune.config.inherit import resolve_config

        return resolve_config(self.ws, base=BASE_JOB).config

    # -- validation -------------------------------------------------------------------------
    def _enqueue(self, job_id: str) -> None:
        with self._lock:
            if job_id in self._validating or self._queue is None:
                return  # a stopped service validates it at its next start
            self._validating.add(job_id)
            self._queue.put(job_id)

    def _validate_job(self, job_id: str) -> None:
        paths = self.ws.job(job_id)
        try:
            report = self.validate(self.ws, read_resolved(paths), paths.root)
        except NocodetuneError as exc:
            report = ValidationReport()
            report.error(exc.message, exc.field)
        except Exception as exc:  # noqa: BLE001 - a crash fails the job, not the worker
            log.exception("validation of %s crashed", job_id)
            report = ValidationReport()
            report.error(f"validation crashed: {exc}")
        try:
            with self._lock:
                self._validating.discard(job_id)
                record = read_job_record(paths) if paths.root.is_dir() else None
                if record is None:
                    return  # deleted meanwhile
                record.validated_at = _now()
                record.warnings = [w.message for w in report.warnings]
                if report.ok:
                    record.validation = "passed"
                else:
                    first = report.errors[0]
                    more = f" (and {len(report.errors) - 1} more problems)" if len(report.errors) > 1 else ""
                    param = openai_param(first.field)
                    code = "invalid_training_file" if param == "training_file" else "invalid_job_config"
                    record.validation, record.error = "failed", JobError(code=code, message=first.message + more, param=param)
                write_job_record(paths, record)
                if record.cancelled_at is not None:
                    return
                if report.ok:
                    self._submit(job_id)
                else:
                    self._settle_created(job_id, JobStatus.failed.value, record.error.message if record.error else None, "config")
        except Exception:  # noqa: BLE001
            log.exception("could not record the validation of %s", job_id)

    def _submit(self, job_id: str) -> None:
        try:
            self.service.submit(job_id)
        except NocodetuneError as exc:
            log.info("job %s not queued: %s", job_id, exc.message)  # already run or queued from elsewhere
        except RuntimeError:
            log.info("job %s validated while the job service is stopped; it is queued at the next start", job_id)

    def _settle_created(self, job_id: str, status: str, error: str | None = None, kind: str | None = None) -> None:
        """Show a job that never ran as failed or cancelled in every face (its record says why)."""
        with db.session(self.ws) as s:
            row = get_row(s, self.ws, job_id)
            if row.status == JobStatus.created.value:
                row.status, row.error, row.error_kind, row.finished_at = status, error, kind, db.utcnow()

    # -- reading ----------------------------------------------------------------------------
    def _record(self, job_id: str) -> JobRecord:
        record = read_job_record(self.ws.job(job_id)) if JOB_ID_RE.match(job_id) and self.ws.job(job_id).root.is_dir() else None
        if record is None:
            raise NotFoundError(f"Could not find fine-tuning job {job_id}", field="fine_tuning_job_id")
        return record

    def describe(self, job_id: str) -> JobView:
        record = self._record(job_id)
        row = self.service.get(job_id)
        status = openai_status(row.status, record)
        view = JobView(record=record, status=status)
        if status in ("succeeded", "failed", "cancelled"):
            view.finished_at = _stamp(row.finished_at) or record.validated_at or record.cancelled_at
        if status == "failed":
            if record.validation == "failed" and row.current_run is None:
                view.error = record.error
            else:
                code, param = _KIND_ERRORS.get(row.error_kind, ("training_failed", None))
                view.error = JobError(code=code, message=row.error or "training failed", param=param)
        if status == "running" and row.eta_seconds is not None:
            view.estimated_finish = _now() + int(row.eta_seconds)
        if status == "succeeded":
            view.fine_tuned_model = fine_tuned_model_name(record)
            finished = [e for e, _ in read_events_with_offsets(self.ws.job(job_id).events) if e.type == "finished"]
            tokens = (finished[-1].data().get("metrics") or {}).get("tokens_seen") if finished else None
            view.trained_tokens = int(tokens) if isinstance(tokens, (int, float)) else None
        return view

    def list(self, *, metadata: dict[str, str] | None = None) -> list[JobRecord]:
        """OpenAI jobs, newest first, those whose metadata holds every given pair."""
        records = [r for r in list_job_records(self.ws) if not metadata or all((r.metadata or {}).get(k) == v for k, v in metadata.items())]
        return records[::-1]

    # -- actions ----------------------------------------------------------------------------
    def cancel(self, job_id: str) -> JobView:
        with self._lock:
            record = self._record(job_id)
            row = self.service.get(job_id)
            status = openai_status(row.status, record)
            if row.status in (JobStatus.queued.value, JobStatus.running.value):
                self.service.cancel(job_id)
            elif status in ("validating_files", "queued", "paused"):  # never ran, or stopped for good now
                record.cancelled_at = _now()
                write_job_record(self.ws.job(job_id), record)
                self._settle_created(job_id, JobStatus.cancelled.value)
            else:
                raise RefusedRequest(f"job {job_id} has already {'completed' if status == 'succeeded' else status}; only a validating, queued, running or paused job can be cancelled", param="fine_tuning_job_id", code="invalid_job_state")
        return self.describe(job_id)

    def pause(self, job_id: str) -> JobView:
        with self._lock:
            record = self._record(job_id)
            row = self.service.get(job_id)
            status = openai_status(row.status, record)
            if status == "queued" and row.status == JobStatus.created.value:
                raise ConflictError(f"job {job_id} is being queued right now", field="fine_tuning_job_id", hint="try again in a moment")
            if row.status not in (JobStatus.queued.value, JobStatus.running.value):
                raise RefusedRequest(f"job {job_id} is {status}; only a queued or running job can be paused", param="fine_tuning_job_id", code="invalid_job_state")
            self.service.pause(job_id)
        return self.describe(job_id)

    def resume(self, job_id: str) -> JobView:
        with self._lock:
            record = self._record(job_id)
            row = self.service.get(job_id)
            status = openai_status(row.status, record)
            if status != "paused":
                raise RefusedRequest(f"job {job_id} is {status}; only a paused job can be resumed", param="fine_tuning_job_id", code="invalid_job_state")
            self.service.resume(job_id)
        return self.describe(job_id)

    # -- events and checkpoints ---------------------------------------------------------------
    def events(self, job_id: str) -> list[EventItem]:
        """The job's events, newest first: its OpenAI milestones and its events.jsonl, as OpenAI words them."""
        record = self._record(job_id)
        short = record.short_id
        out: list[EventItem] = [
            EventItem(id=f"ftevent-{short}-c0", created_at=record.created_at, message=f"Created fine-tuning job: {job_id}"),
            EventItem(id=f"ftevent-{short}-c1", created_at=record.created_at, message=f"Validating training file: {record.training_file}"),
        ]
        if record.validated_at is not None:
            for i, warning in enumerate(record.warnings):
                out.append(EventItem(id=f"ftevent-{short}-w{i}", created_at=record.validated_at, level="warn", message=warning))
            if record.validation == "passed":
                out.append(EventItem(id=f"ftevent-{short}-v", created_at=record.validated_at, message="Files validated, moving job to queued state"))
            elif record.error is not None:
                out.append(EventItem(id=f"ftevent-{short}-v", created_at=record.validated_at, level="error", message=f"Validation failed: {record.error.message}"))
        out.extend(self._run_events(record))
        if record.cancelled_at is not None:
            out.append(EventItem(id=f"ftevent-{short}-x", created_at=record.cancelled_at, message="Fine-tuning job cancelled"))
        out.sort(key=lambda e: e.created_at)  # stable: same-second events keep their order
        return out[::-1]

    def _run_events(self, record: JobRecord) -> list[EventItem]:
        short = record.short_id
        out: list[EventItem] = []
        metrics_at: dict[int, EventItem] = {}
        for event, offset in read_events_with_offsets(self.ws.job(record.id).events):
            data, when = event.data(), int(event.time)

            def item(message: str, level: Literal["info", "warn", "error"] = "info", n: int = 0, ev: Event = event, at: int = offset) -> EventItem:
                return EventItem(id=f"ftevent-{short}-{at}-{n}", created_at=int(ev.time), level=level, message=message)

            if event.type == "started":
                resumed = data.get("resumed_from")
                out.append(item("Fine-tuning job resumed" + (f" from {Path(str(resumed)).name}" if resumed else "") if resumed else "Fine-tuning job started"))
            elif event.type == "message" and data.get("text"):
                out.append(item(str(data["text"])))
            elif event.type in ("log", "eval") and isinstance(data.get("step"), int):
                step = data["step"]
                metrics = metrics_at.get(step)
                if metrics is None:
                    metrics = EventItem(id=f"ftevent-{short}-{offset}-0", created_at=when, type="metrics", message="", data={"step": step})
                    metrics_at[step] = metrics
                    out.append(metrics)
                assert metrics.data is not None
                if event.type == "log" and data.get("loss") is not None:
                    metrics.data["train_loss"] = data["loss"]
                if event.type == "eval" and data.get("eval_loss") is not None:
                    metrics.data["valid_loss"] = metrics.data["full_valid_loss"] = data["eval_loss"]
                if data.get("total_steps"):
                    metrics.data["total_steps"] = data["total_steps"]
                metrics.message = _metrics_message(metrics.data)
            elif event.type == "checkpoint":
                out.append(item(f"Checkpoint created at step {data.get('step')}"))
            elif event.type == "paused":
                out.append(item(f"Fine-tuning job paused at step {data.get('step')}"))
            elif event.type == "cancelled":
                out.append(item(f"Fine-tuning job cancelled at step {data.get('step')}"))
            elif event.type == "failed":
                hint = f" ({data['hint']})" if data.get("hint") else ""
                out.append(item(f"Fine-tuning job failed: {data.get('error')}{hint}", "error"))
            elif event.type == "finished":
                out.append(item(f"New fine-tuned model created: {fine_tuned_model_name(record)}"))
                out.append(item("The job has successfully completed", n=1))
        return out

    def checkpoints(self, job_id: str) -> list[CheckpointItem]:
        """Checkpoints still on disk, newest first, with the metrics logged at their step."""
        record = self._record(job_id)
        events = [e for e, _ in read_events_with_offsets(self.ws.job(job_id).events)]
        saved: dict[int, Event] = {}
        for event in events:
            data = event.data()
            if event.type == "checkpoint" and isinstance(data.get("step"), int) and data.get("path") and Path(str(data["path"])).exists():
                saved[data["step"]] = event
        base = fine_tuned_model_name(record)
        out = []
        for step, event in sorted(saved.items(), reverse=True):
            metrics: dict[str, float] = {"step": float(step)}
            for e in events:
                data = e.data()
                if not isinstance(data.get("step"), int) or data["step"] > step:
                    continue
                if e.type == "log" and data.get("loss") is not None:
                    metrics["train_loss"] = float(data["loss"])
                if e.type == "eval" and data.get("eval_loss") is not None:
                    metrics["valid_loss"] = metrics["full_valid_loss"] = float(data["eval_loss"])
            out.append(CheckpointItem(id=f"ftckpt-{record.short_id}-{step}", created_at=int(event.time), step=step, metrics=metrics, fine_tuned_model_checkpoint=f"{base}:ckpt-step-{step}"))
        return out

    # -- models --------------------------------------------------------------------------------
    def models(self) -> list[ModelItem]:
        """Fine-tuned models of succeeded jobs, then the base models they and the workspace offer."""
        tuned: list[ModelItem] = []
        bases: dict[str, int] = {}
        gguf = default_gguf_path()
        if gguf is not None:
            bases[DEFAULT_MODEL_NAME] = int(gguf.stat().st_mtime)
        for record in list_job_records(self.ws):
            bases.setdefault(record.model, record.created_at)
            try:
                view = self.describe(record.id)
            except NocodetuneError:
                continue
            if view.fine_tuned_model:
                tuned.append(ModelItem(id=view.fine_tuned_model, created=view.finished_at or record.created_at, owned_by="user"))
        return tuned[::-1] + [ModelItem(id=name, created=created, owned_by="nocodetune") for name, created in bases.items()]

    def _job_of(self, model: str) -> str | None:
        """The job id an `ft:…` name points at (None when it names none)."""
        tail = model.rsplit(":", 1)[-1]
        job_id = f"ftjob-{tail}"
        return job_id if JOB_ID_RE.match(job_id) else None

    def chat_target(self, model: str) -> ChatTarget:
        """Which model server answers `model`: a succeeded job's output or a listed base model; 404 otherwise."""
        if model.startswith("ft:"):
            if ":ckpt-step-" in model:
                raise NotFoundError(f"The model `{model}` is a checkpoint; only a job's final model is served", field="model", hint="use the job's fine_tuned_model")
            job_id = self._job_of(model)
            view = self.describe(job_id) if job_id and self.ws.job(job_id).root.is_dir() else None
            if view is None or fine_tuned_model_name(view.record) != model:
                raise NotFoundError(f"The model `{model}` does not exist", field="model")
            if view.fine_tuned_model is None:
                raise NotFoundError(f"The model `{model}` is not ready: its job is {view.status}", field="model")
            return ChatTarget(job=job_id)
        if model in {m.id for m in self.models()}:
            return ChatTarget(model=section_for_identity(model).source)
        raise NotFoundError(f"The model `{model}` does not exist", field="model", hint="GET /v1/models lists the models served here")


def _metrics_message(data: dict[str, Any]) -> str:
    total = f"/{data['total_steps']}" if data.get("total_steps") else ""
    parts = []
    if data.get("train_loss") is not None:
        parts.append(f"training loss={data['train_loss']:.4f}")
    if data.get("valid_loss") is not None:
        parts.append(f"validation loss={data['valid_loss']:.4f}")
    return f"Step {data['step']}{total}: {', '.join(parts)}"
