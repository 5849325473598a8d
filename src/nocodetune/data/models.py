"""Pydantic models of the dataset store, shared by the CLI and the REST API."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from nocodetune.data.report import FormatReport
from nocodetune.records.dataset import DatasetVersionMeta


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
    report: list[FormatReport] = Field(
        default_factory=list, description="Each training format the columns fit: rows usable, rows refused and why. Empty when no format fits."
    )


class PreviewPage(BaseModel):
    columns: list[str]
    rows: list[dict[str, Any]]
    total: int
    offset: int
    limit: int
