"""`job.yaml` (what was asked) and `resolved.json` (the effective config, reproducibly).

`job.yaml` holds `base`, `parent` and config-section overrides, nested; base jobs in
`archive/<base>/job.yaml` use the same shape. `resolved.json` is written once by job
creation and read by everyone else through `read_resolved`, including the training
process (which reads nothing outside the job folder except the model and, for a child
job, the parent folders named in its lineage).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from nocodetune.errors import ConfigError, NocodetuneError
from nocodetune.records.io import read_model, read_yaml, write_model, write_text_atomic
from nocodetune.records.schema import JOB_META_KEYS, JobConfig
from nocodetune.workspace import JobPaths, Workspace

RESOLVED_FORMAT_VERSION = 2  # 1: first release (no format_version key); 2: resources/objective/preference sections


class DatasetSnapshot(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    version: int
    sha256: str
    file: str = Field(description="Path of the snapshot file, relative to the job folder (files/...).")
    format: str = Field(description="Detected file format (csv, jsonl, parquet ...).")
    rows: int | None = None
    columns: list[str] = Field(default_factory=list)


class Lineage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base: str | None = None
    base_chain: list[str] = Field(default_factory=list, description="Base jobs from the root base to the direct one.")
    parent: str | None = None
    parent_chain: list[str] = Field(default_factory=list, description="Ancestor jobs, oldest first.")
    parent_dir: str | None = Field(None, description="Absolute path of the parent job folder; training starts from its outputs.")


class ResolvedJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format_version: int = Field(1, description="Record format; files written before format versions existed read as 1.")
    name: str
    created_at: str
    config: JobConfig
    datasets: list[DatasetSnapshot] = Field(default_factory=list)
    lineage: Lineage = Field(default_factory=Lineage)
    sources: dict[str, str] = Field(default_factory=dict, description="Dotted key -> where its value came from: 'schema', 'base:<name>', 'parent:<name>' or 'job'.")
    versions: dict[str, str] = Field(default_factory=dict, description="nocodetune and library versions at creation.")

    def write(self, path: Path) -> None:
        write_model(path, self)

    @classmethod
    def read(cls, path: Path, display: str | None = None) -> "ResolvedJob":
        job = read_model(path, cls, display)
        if job.format_version > RESOLVED_FORMAT_VERSION:
            raise ConfigError(
                f"{display or path} was written by a newer NoCodeTune (format {job.format_version})",
                file=str(display or path),
                hint="upgrade NoCodeTune to open this job",
            )
        return job


# -- resolved.json ------------------------------------------------------------------


def read_resolved(paths: JobPaths) -> ResolvedJob:
    """A job's resolved.json; a ConfigError naming `jobs/<job>/resolved.json` when it is missing or damaged."""
    return ResolvedJob.read(paths.resolved_json, f"jobs/{paths.name}/resolved.json")


def job_names(ws: Workspace) -> list[str]:
    """Jobs of the workspace: folders of jobs/ that hold a resolved.json."""
    if not ws.jobs.is_dir():
        return []
    return sorted(p.name for p in ws.jobs.iterdir() if (p / "resolved.json").is_file())


def iter_resolved(ws: Workspace) -> Iterator[tuple[str, ResolvedJob]]:
    """(name, resolved) of every readable job; a damaged one is skipped (`read_resolved` reports it where it is used)."""
    for name in job_names(ws):
        try:
            yield name, read_resolved(ws.job(name))
        except NocodetuneError:
            continue


def parent_paths(resolved: ResolvedJob, job_root: Path | None) -> JobPaths | None:
    """The folder of the job's parent: the sibling folder of that name (a workspace can move or be
    copied, and its jobs with it), else the path recorded at creation."""
    name = resolved.lineage.parent
    if not name:
        return None
    if job_root is not None and (job_root.parent / name / "resolved.json").is_file():
        return JobPaths(job_root.parent / name)
    return JobPaths(Path(resolved.lineage.parent_dir)) if resolved.lineage.parent_dir else None


# -- job.yaml -----------------------------------------------------------------------


def read_job_yaml(path: Path, label: str | None = None) -> dict[str, Any]:
    """A job.yaml (a job's or a base's) as a mapping; a ConfigError naming the file when it is not one."""
    label = label or str(path)
    data = read_yaml(path, label)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{label} must be a mapping of settings, not {type(data).__name__}", file=label)
    return data


def write_job_yaml(path: Path, data: Mapping[str, Any]) -> None:
    write_text_atomic(path, yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True))


def split_job_yaml(data: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """job.yaml → (meta: base/parent, overrides: config sections)."""
    meta = {k: data[k] for k in JOB_META_KEYS if k in data}
    overrides = {k: v for k, v in data.items() if k not in JOB_META_KEYS}
    return meta, overrides
