"""`resolved.json`: the effective config of a job plus everything needed to reproduce it.

Written once by job creation; read by `nocodetune.training` (which reads nothing outside
the job folder except the model and, for a child job, the parent's outputs named here).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from nocodetune.config.schema import JobConfig


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

    name: str
    created_at: str
    config: JobConfig
    datasets: list[DatasetSnapshot] = Field(default_factory=list)
    lineage: Lineage = Field(default_factory=Lineage)
    sources: dict[str, str] = Field(default_factory=dict, description="Dotted key -> where its value came from: 'schema', 'base:<name>', 'parent:<name>' or 'job'.")
    versions: dict[str, str] = Field(default_factory=dict, description="nocodetune and library versions at creation.")

    def write(self, path: Path) -> None:
        path.write_text(self.model_dump_json(indent=2) + "\n", encoding="utf-8")

    @classmethod
    def read(cls, path: Path) -> "ResolvedJob":
        return cls.model_validate(json.loads(path.read_text(encoding="utf-8")))
