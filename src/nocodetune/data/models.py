"""Pydantic models of the dataset store, shared by the CLI and the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nocodetune.config.resolved import DatasetSnapshot
from nocodetune.data.formats import TextSplit

META_FILE = "meta.json"


class DatasetVersionMeta(BaseModel):
    """`files/<name>/v<N>/meta.json`: what a version holds, written once when it is added."""

    model_config = ConfigDict(extra="ignore")

    name: str
    version: int = Field(ge=1)
    sha256: str
    original_filename: str = Field(description="The name the file had when it was added (metadata only).")
    file: str = Field(description="Stored file name inside the version folder.")
    size_bytes: int = Field(ge=0)
    rows: int = Field(ge=0)
    columns: list[str]
    format: str = Field(description="Detected file format: csv, tsv, json, jsonl, parquet, excel, txt, md, html, pdf, docx.")
    encoding: str | None = Field(None, description="Text encoding found (text formats).")
    text_split: TextSplit | None = Field(None, description="Document formats: one row per paragraph, or the whole document.")
    created_at: datetime
    tags: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Fixes made while reading (renamed headers, sheet used ...).")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def snapshot(self, file: str) -> DatasetSnapshot:
        """The `resolved.json` entry for this version, snapshotted at `file` (relative to the job folder)."""
        return DatasetSnapshot(
            name=self.name, version=self.version, sha256=self.sha256, file=file, format=self.format, rows=self.rows, columns=list(self.columns)
        )


class DatasetInfo(BaseModel):
    """A dataset and all its versions, oldest first."""

    name: str
    latest: int
    versions: list[DatasetVersionMeta]

    @property
    def latest_meta(self) -> DatasetVersionMeta:
        return self.versions[-1]


class AddResult(BaseModel):
    meta: DatasetVersionMeta
    created: bool = Field(description="False when the same bytes were already stored as this version.")


class PreviewPage(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int
