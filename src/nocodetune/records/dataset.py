"""`files/<name>/v<N>/meta.json`: what a dataset version holds, written once when it is added.

A job's snapshot (`jobs/<job>/files/<name>@<N>/`) carries a copy of the same file, so a job
folder alone says how its data is read.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from nocodetune.errors import ConfigError
from nocodetune.records.io import read_model, write_model, write_text_atomic
from nocodetune.records.job import DatasetSnapshot

META_FILE = "meta.json"
LAST_VERSION_FILE = ".last_version"  # keeps numbers of deleted versions from being reused
DATASET_FORMAT_VERSION = 2  # 1: first release (no format_version key); 2: encoding_source, encoding_alternatives
TextSplit = Literal["paragraph", "document"]
VERSION_DIR_RE = re.compile(r"^v([1-9][0-9]*)$")


class DatasetVersionMeta(BaseModel):
    """One immutable dataset version."""

    model_config = ConfigDict(extra="ignore")

    format_version: int = Field(1, description="Record format; files written before format versions existed read as 1.")
    name: str
    version: int = Field(ge=1)
    sha256: str
    original_filename: str = Field(description="The name the file had when it was added (metadata only).")
    file: str = Field(description="Stored file name inside the version folder.")
    size_bytes: int = Field(ge=0)
    rows: int = Field(ge=0)
    columns: list[str]
    format: str = Field(description="Detected file format: csv, tsv, json, jsonl, parquet, excel, txt, md, html, pdf, docx.")
    encoding: str | None = Field(None, description="Text encoding the file was read with (text formats).")
    encoding_source: Literal["bom", "utf-8", "detected", "given"] | None = Field(
        None, description="How the encoding was known: the file's BOM, valid UTF-8, detected from the whole file, or given by the user."
    )
    encoding_alternatives: list[str] = Field(
        default_factory=list, description="Detected encodings only: other encodings that would also read the file plausibly (see notes)."
    )
    text_split: TextSplit | None = Field(None, description="Document formats: one row per paragraph, or the whole document.")
    created_at: datetime
    tags: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list, description="Fixes made while reading (renamed headers, sheet used, encoding chosen ...).")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def snapshot(self, file: str) -> DatasetSnapshot:
        """The `resolved.json` entry for this version, snapshotted at `file` (relative to the job folder)."""
        return DatasetSnapshot(
            name=self.name, version=self.version, sha256=self.sha256, file=file, format=self.format, rows=self.rows, columns=list(self.columns)
        )


def meta_path(version_dir: Path) -> Path:
    return version_dir / META_FILE


def read_meta(version_dir: Path, display: str | None = None) -> DatasetVersionMeta:
    """The meta.json of a version folder (or of a job's snapshot folder)."""
    name = display or f"{version_dir.name}/{META_FILE}"
    meta = read_model(meta_path(version_dir), DatasetVersionMeta, name)
    if meta.format_version > DATASET_FORMAT_VERSION:
        raise ConfigError(f"{name} was written by a newer NoCodeTune (format {meta.format_version})", file=name, hint="upgrade NoCodeTune to read this dataset")
    return meta


def write_meta(version_dir: Path, meta: DatasetVersionMeta) -> None:
    write_model(meta_path(version_dir), meta)


def read_last_version(dataset_dir: Path) -> int:
    """The highest version number ever given in this dataset folder (0 when none), deleted versions included."""
    marker = dataset_dir / LAST_VERSION_FILE
    text = marker.read_text(encoding="utf-8").strip() if marker.is_file() else ""
    return int(text) if text.isdigit() else 0


def write_last_version(dataset_dir: Path, version: int) -> None:
    write_text_atomic(dataset_dir / LAST_VERSION_FILE, f"{version}\n")


def is_version_dir(folder: Path) -> bool:
    """A complete version: a `v<N>` folder with its meta.json (a half-added one has none)."""
    return bool(VERSION_DIR_RE.match(folder.name)) and meta_path(folder).is_file()


def list_versions(dataset_dir: Path) -> list[DatasetVersionMeta]:
    """All complete versions of a dataset folder, oldest first."""
    if not dataset_dir.is_dir():
        return []
    metas = [read_meta(child) for child in dataset_dir.iterdir() if is_version_dir(child)]
    return sorted(metas, key=lambda m: m.version)
