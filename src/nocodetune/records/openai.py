"""OpenAI fine-tuning API records: which file id is which dataset version, and what a job asked.

The registry never holds these: they are files, so `workspace reindex` (or a lost
registry) loses no id (docs/DECISIONS.md, "Everything the registry knows is on disk").

| record | file |
|---|---|
| an uploaded file (`file-…`) and the dataset version it became | `files/<dataset>/v<N>/openai/<file-id>.json` |
| a fine-tuning job (`ftjob-…`): the OpenAI request and its validation outcome | `jobs/<ftjob-id>/openai.json` |

A file record lives inside its dataset version, so deleting the version (UI, CLI) deletes
the id with it; several ids may name one version (the same bytes uploaded twice). A job's
NoCodeTune name is its OpenAI id, so the job folder and the id cannot drift apart.
"""

from __future__ import annotations

import logging
import math
import re
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nocodetune.errors import ConfigError, NocodetuneError
from nocodetune.records.io import read_model, write_model
from nocodetune.workspace import JobPaths, Workspace

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
FILE_ID_RE = re.compile(r"^file-[0-9a-f]{24}$")
JOB_ID_RE = re.compile(r"^ftjob-[0-9a-f]{24}$")
FILE_RECORDS_DIR = "openai"  # inside a dataset version folder
JOB_RECORD_FILE = "openai.json"  # inside a job folder

# OpenAI's ranges for the hyperparameters (what its API accepts).
N_EPOCHS_RANGE = (1, 50)
BATCH_SIZE_RANGE = (1, 256)
LR_MULTIPLIER_MAX = 10.0
BETA_MAX = 2.0

FileFormat = Literal["messages", "preference"]
MethodType = Literal["supervised", "dpo"]
ValidationState = Literal["pending", "passed", "failed"]


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def new_job_id() -> str:
    return "ftjob-" + secrets.token_hex(12)


def _refuse_newer(record: BaseModel, display: str) -> None:
    if getattr(record, "format_version", 1) > FORMAT_VERSION:
        raise ConfigError(f"{display} was written by a newer NoCodeTune (format {record.format_version})", file=display, hint="upgrade NoCodeTune")  # type: ignore[attr-defined]


# -- files ----------------------------------------------------------------------------


class FileRecord(BaseModel):
    """An uploaded file: its OpenAI id and the dataset version holding its bytes."""

    model_config = ConfigDict(extra="ignore")

    format_version: int = FORMAT_VERSION
    id: str
    filename: str = Field(description="The name the client uploaded it under.")
    bytes: int = Field(ge=0)
    created_at: int = Field(description="Unix seconds.")
    created_time: float = Field(0.0, description="time.time() at upload: orders files uploaded within one second.")
    purpose: str
    dataset: str
    version: int = Field(ge=1)
    data_format: FileFormat = Field(description="messages (chat, for supervised) or preference (for dpo), as data.examples detected it.")
    created_version: bool = Field(description="True when this upload added the version (an identical earlier upload or dataset did not).")

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.version}"


def version_records_dir(ws: Workspace, dataset: str, version: int) -> Path:
    return ws.dataset_dir(dataset) / f"v{version}" / FILE_RECORDS_DIR


def write_file_record(ws: Workspace, record: FileRecord) -> None:
    write_model(version_records_dir(ws, record.dataset, record.version) / f"{record.id}.json", record)


def _read_file_record(path: Path) -> FileRecord | None:
    try:
        record = read_model(path, FileRecord, f"files/{path.parents[2].name}/{path.parents[1].name}/{FILE_RECORDS_DIR}/{path.name}")
        _refuse_newer(record, str(path))
        return record
    except NocodetuneError as exc:
        log.warning("ignoring unreadable file record: %s", exc)
        return None


def find_file_record(ws: Workspace, file_id: str) -> FileRecord | None:
    """The record of `file_id`, or None (unknown id, or its dataset version was deleted)."""
    if not FILE_ID_RE.match(file_id) or not ws.files.is_dir():
        return None
    for path in ws.files.glob(f"*/v*/{FILE_RECORDS_DIR}/{file_id}.json"):
        return _read_file_record(path)
    return None


def list_file_records(ws: Workspace) -> list[FileRecord]:
    """Every readable file record, oldest first."""
    if not ws.files.is_dir():
        return []
    found = (_read_file_record(p) for p in ws.files.glob(f"*/v*/{FILE_RECORDS_DIR}/file-*.json"))
    return sorted((r for r in found if r is not None), key=lambda r: (r.created_at, r.created_time, r.id))


def records_of_version(ws: Workspace, dataset: str, version: int) -> list[FileRecord]:
    folder = version_records_dir(ws, dataset, version)
    found = (_read_file_record(p) for p in folder.glob("file-*.json")) if folder.is_dir() else ()
    return [r for r in found if r is not None]


def remove_file_record(ws: Workspace, record: FileRecord) -> None:
    folder = version_records_dir(ws, record.dataset, record.version)
    (folder / f"{record.id}.json").unlink(missing_ok=True)
    try:
        folder.rmdir()  # only when it is empty
    except OSError:
        pass


# -- jobs -----------------------------------------------------------------------------


def _auto_or_number(value: object, name: str, *, whole: bool, low: float, high: float, low_open: bool = False) -> object:
    """'auto' or a number within OpenAI's range; the message names the range."""
    if value is None or value == "auto":
        return value
    kind = "a whole number" if whole else "a number"
    bounds = f"{'above' if low_open else 'from'} {low:g} {'up ' if low_open else ''}to {high:g}"
    problem = f"{name} must be 'auto' or {kind} {bounds}, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(problem)
    if whole and (isinstance(value, float) and not value.is_integer()):
        raise ValueError(problem)
    if math.isnan(value) or value > high or value < low or (low_open and value <= low):
        raise ValueError(problem)
    return int(value) if whole else float(value)


class Hyperparameters(BaseModel):
    """Hyperparameters as the request gave them: 'auto', a value, or left out (None)."""

    model_config = ConfigDict(extra="forbid")

    n_epochs: Literal["auto"] | int | None = None
    batch_size: Literal["auto"] | int | None = None
    learning_rate_multiplier: Literal["auto"] | float | None = None
    beta: Literal["auto"] | float | None = Field(None, description="DPO only.")

    @field_validator("n_epochs", "batch_size", "learning_rate_multiplier", "beta", mode="before")
    @classmethod
    def _ranges(cls, value: object, info: object) -> object:
        name = getattr(info, "field_name", "value")
        if name == "n_epochs":
            return _auto_or_number(value, name, whole=True, low=N_EPOCHS_RANGE[0], high=N_EPOCHS_RANGE[1])
        if name == "batch_size":
            return _auto_or_number(value, name, whole=True, low=BATCH_SIZE_RANGE[0], high=BATCH_SIZE_RANGE[1])
        if name == "learning_rate_multiplier":
            return _auto_or_number(value, name, whole=False, low=0, high=LR_MULTIPLIER_MAX, low_open=True)
        return _auto_or_number(value, name, whole=False, low=0, high=BETA_MAX, low_open=True)


class UsedHyperparameters(BaseModel):
    """The values the job trains with ('auto' resolved from the base job), as OpenAI reports them."""

    n_epochs: int | float
    batch_size: int
    learning_rate_multiplier: float
    beta: float | None = None


class JobError(BaseModel):
    code: str
    message: str
    param: str | None = None


class JobRecord(BaseModel):
    """What an OpenAI `POST /v1/fine_tuning/jobs` asked, and how its files' validation went."""

    model_config = ConfigDict(extra="ignore")

    format_version: int = FORMAT_VERSION
    id: str
    created_at: int
    created_time: float = Field(0.0, description="time.time() at creation: orders jobs created within one second.")
    model: str = Field(description="The model as the request named it.")
    base_model: str = Field(description="The model's public name (the embedded model's name, a hub id, a folder name): the <base> of ft:<base>:<suffix>:<id>.")
    training_file: str
    validation_file: str | None = None
    suffix: str | None = None
    seed: int
    metadata: dict[str, str] | None = None
    method: MethodType = "supervised"
    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)
    used: UsedHyperparameters
    validation: ValidationState = "pending"
    validated_at: int | None = None
    warnings: list[str] = Field(default_factory=list, description="Validation warnings (shown as warn events).")
    error: JobError | None = Field(None, description="Why validation refused the job.")
    cancelled_at: int | None = Field(None, description="Cancelled before it ever ran (while validating, or paused and then cancelled).")

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("ftjob-")


def job_record_path(paths: JobPaths) -> Path:
    return paths.root / JOB_RECORD_FILE


def read_job_record(paths: JobPaths) -> JobRecord | None:
    """The job's OpenAI record; None for a job not created through the OpenAI API."""
    path = job_record_path(paths)
    if not path.is_file():
        return None
    display = f"jobs/{paths.name}/{JOB_RECORD_FILE}"
    record = read_model(path, JobRecord, display)
    _refuse_newer(record, display)
    return record


def write_job_record(paths: JobPaths, record: JobRecord) -> None:
    write_model(job_record_path(paths), record)


def list_job_records(ws: Workspace) -> list[JobRecord]:
    """Every readable OpenAI job record, oldest first (a damaged one is skipped and logged)."""
    if not ws.jobs.is_dir():
        return []
    out = []
    for path in ws.jobs.glob(f"ftjob-*/{JOB_RECORD_FILE}"):
        try:
            record = read_job_record(JobPaths(path.parent))
        except NocodetuneError as exc:
            log.warning("ignoring unreadable job record: %s", exc)
            continue
        if record is not None:
            out.append(record)
    return sorted(out, key=lambda r: (r.created_at, r.created_time, r.id))
