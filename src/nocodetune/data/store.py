"""The versioned dataset store: `files/<name>/v<N>/<file>` + `meta.json`.

A version is immutable: it is read and checked in the staging area, then renamed into
place in one step under a per-dataset lock, so readers never see half a version and two
concurrent adds never get the same number. Adding bytes that are already stored returns
that version instead of a copy. Jobs keep their own snapshot (`jobs/<job>/files/`), so
deleting a version never breaks a job that already ran; it is still refused while a job
names it, unless forced.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

from nocodetune.data.formats import DOCUMENT_FORMATS, TextSplit
from nocodetune.data.models import AddResult, DatasetInfo, PreviewPage
from nocodetune.records.dataset import (
    DATASET_FORMAT_VERSION,
    DatasetVersionMeta,
    is_version_dir,
    list_versions,
    read_last_version,
    write_last_version,
    write_meta,
)
from nocodetune.data.readers import preview as read_preview
from nocodetune.data.readers import read_file
from nocodetune.data.report import FormatReport, report_file, report_rows
from nocodetune.data.decode import check_encoding
from nocodetune.data.staging import StagedFile, disk_errors, remove_stale_staging
from nocodetune.data.table import Table
from nocodetune.errors import ConflictError, DataError, NotFoundError, UnsafeNameError
from nocodetune.workspace import Workspace, check_name

LOCK_TIMEOUT_S = 120.0
MAX_PREVIEW_ROWS = 1000
KEEP_ROWS_BYTES = 16 << 20  # files up to this size are read once for checking and reporting; larger ones are streamed twice


def clean_tags(tags: Iterable[str]) -> list[str]:
    """Trimmed, non-empty, unique tags in the order given."""
    out: list[str] = []
    for tag in tags:
        tag = str(tag).strip()
        if len(tag) > 64:
            raise DataError(f"tag {tag[:20]!r}... is longer than 64 characters", field="tags")
        if tag and tag not in out:
            out.append(tag)
    return out


def split_ref(ref: str) -> tuple[str, int | None]:
    """`name@2` → ('name', 2); `name` → ('name', None). Syntax only; the store is not asked."""
    name, sep, version = ref.strip().partition("@")
    if sep and not version.isdigit():
        raise DataError(f"invalid dataset reference {ref!r}: use name@version with a whole number, e.g. {name or 'reviews'}@1", field="dataset")
    return check_name(name, "dataset name"), int(version) if sep else None


class DatasetStore:
    """Datasets of one workspace."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws

    # -- adding -------------------------------------------------------------------
    def stage(self, original_filename: str, max_bytes: int | None = None) -> StagedFile:
        """A staging file to stream bytes into; pass it to `add_staged` (or `discard()` it)."""
        self.ws.require()
        remove_stale_staging(self.ws)
        return StagedFile(self.ws, original_filename, max_bytes)

    def add(
        self,
        source: Path | str | BinaryIO,
        name: str,
        original_filename: str | None = None,
        tags: Iterable[str] = (),
        split: TextSplit = "paragraph",
        encoding: str | None = None,
    ) -> AddResult:
        """Add a file (a path or a binary stream) as the next version of dataset `name`.

        `encoding` (text formats) overrides detection; it is checked before a byte is copied.
        """
        check_name(name, "dataset name")
        if encoding:
            check_encoding(encoding)
        if isinstance(source, (str, Path)):
            path = Path(source)
            if not path.is_file():
                raise NotFoundError(f"file not found: {path}", file=str(path))
            staged = self.stage(original_filename or path.name)
            with staged, open(path, "rb") as fh:
                staged.copy_from(fh)
                return self.add_staged(staged, name, tags, split, encoding)
        if not original_filename:
            raise DataError("original_filename is needed to add a stream (its extension gives the format)", field="original_filename")
        with self.stage(original_filename) as staged:
            staged.copy_from(source)
            return self.add_staged(staged, name, tags, split, encoding)

    def add_staged(
        self, staged: StagedFile, name: str, tags: Iterable[str] = (), split: TextSplit = "paragraph", encoding: str | None = None
    ) -> AddResult:
        """Validate a staged file and rename it into place as a new version (or find it already stored).

        Everything that can fail (reading, the meta, a full disk) happens in the staging
        folder; the one step that publishes the version is a rename, so a failure at any
        point leaves no version, or a complete one.
        """
        try:
            check_name(name, "dataset name")
            tags = clean_tags(tags)
            if encoding:
                encoding = check_encoding(encoding)
            sha256 = staged.finish()
            same = self._find_sha(name, sha256)
            if same is not None:
                return AddResult(meta=same, created=False, report=self._report(staged, same))
            keep = staged.size <= KEEP_ROWS_BYTES  # small files: the rows read once serve the report too
            table = read_file(staged.path, fmt=staged.format, split=split, display=staged.original_filename, keep_rows=keep, encoding=encoding)
            with self._lock(name):
                same = self._find_sha(name, sha256)  # an identical add may have won the race
                if same is not None:
                    return AddResult(meta=same, created=False, report=self._report(staged, same))
                meta = self._meta_for(staged, name, self._next_version(name), sha256, table, tags)
                report = report_rows(table.rows, meta.columns) if keep else self._report(staged, meta)
                self._publish(staged, meta)
                return AddResult(meta=meta, created=True, report=report)
        finally:
            staged.discard()

    @staticmethod
    def _report(staged: StagedFile, meta: DatasetVersionMeta) -> list[FormatReport]:
        """Per training format: rows usable and rows refused (read from the staged bytes, which equal the version's)."""
        return report_file(staged.path, meta.format, meta.columns, meta.text_split or "paragraph", staged.original_filename, meta.encoding)

    def _publish(self, staged: StagedFile, meta: DatasetVersionMeta) -> None:
        """Write the meta beside the staged file, then rename the folder into place as `v<N>`."""
        dataset_dir = self.ws.dataset_dir(meta.name)
        created_dir = not dataset_dir.exists()
        try:
            with disk_errors(f"storing {staged.original_filename} as {meta.ref}", staged.original_filename):
                write_meta(staged.dir, meta)
                os.chmod(staged.dir, 0o755)  # mkdtemp made it private
                dataset_dir.mkdir(parents=True, exist_ok=True)
                # the number is taken before the version appears: a crash in between leaves a gap, never a reuse
                write_last_version(dataset_dir, meta.version)
                os.rename(staged.dir, dataset_dir / f"v{meta.version}")
                staged.committed = True
        except BaseException:
            if created_dir and not staged.committed:
                shutil.rmtree(dataset_dir, ignore_errors=True)  # only the marker can be in a folder this add created
            raise

    @staticmethod
    def _meta_for(staged: StagedFile, name: str, version: int, sha256: str, table: Table, tags: list[str]) -> DatasetVersionMeta:
        return DatasetVersionMeta(
            format_version=DATASET_FORMAT_VERSION,
            name=name,
            version=version,
            sha256=sha256,
            original_filename=staged.original_filename,
            file=staged.path.name,
            size_bytes=staged.size,
            rows=table.num_rows,
            columns=table.columns,
            format=table.format,
            encoding=table.encoding,
            encoding_source=table.encoding_source,  # type: ignore[arg-type]
            encoding_alternatives=table.encoding_alternatives,
            text_split=table.text_split if table.format in DOCUMENT_FORMATS else None,
            created_at=datetime.now(timezone.utc),
            tags=tags,
            notes=table.notes,
        )

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        from filelock import FileLock, Timeout

        locks = self.ws.tmp / "locks"
        try:
            with disk_errors(f"locking dataset {name!r}"):
                locks.mkdir(parents=True, exist_ok=True)
                lock = FileLock(str(locks / f"dataset-{name}.lock"), timeout=LOCK_TIMEOUT_S)
                lock.acquire()
            try:
                yield
            finally:
                lock.release()
        except Timeout:
            raise ConflictError(f"dataset {name!r} is busy (another add or delete is running)", hint="try again in a moment") from None

    def _next_version(self, name: str) -> int:
        return max([read_last_version(self.ws.dataset_dir(name)), *(m.version for m in self._versions(name))]) + 1

    def _find_sha(self, name: str, sha256: str) -> DatasetVersionMeta | None:
        return next((m for m in self._versions(name) if m.sha256 == sha256), None)

    # -- reading ------------------------------------------------------------------
    def _versions(self, name: str) -> list[DatasetVersionMeta]:
        """All complete versions of a dataset, oldest first (a folder without meta.json is skipped)."""
        return list_versions(self.ws.dataset_dir(name))

    def names(self) -> list[str]:
        if not self.ws.files.is_dir():
            return []
        return sorted(d.name for d in self.ws.files.iterdir() if d.is_dir() and self._is_dataset(d))

    @staticmethod
    def _is_dataset(folder: Path) -> bool:
        """A folder of files/ with a safe name and at least one complete version."""
        try:
            check_name(folder.name, "dataset name")
        except UnsafeNameError:
            return False
        return any(is_version_dir(c) for c in folder.iterdir())

    def list(self) -> list[DatasetInfo]:
        return [self.get(name) for name in self.names()]

    def get(self, name: str) -> DatasetInfo:
        versions = self._versions(check_name(name, "dataset name"))
        if not versions:
            available = ", ".join(self.names()) or "none yet"
            raise NotFoundError(
                f"no dataset named {name!r}", field="dataset", hint=f"available datasets: {available}; add one with `nocodetune data add FILE --name {name}`"
            )
        return DatasetInfo(name=name, latest=versions[-1].version, versions=versions)

    def version(self, name: str, version: int | None = None) -> DatasetVersionMeta:
        """One version's meta; the latest when `version` is None."""
        info = self.get(name)
        if version is None:
            return info.latest_meta
        for meta in info.versions:
            if meta.version == version:
                return meta
        available = ", ".join(str(m.version) for m in info.versions)
        raise NotFoundError(f"dataset {name!r} has no version {version}; available versions: {available}", field="dataset", hint=f"use {name}@{info.latest} or {name} for the latest")

    def parse_ref(self, ref: str) -> tuple[str, int]:
        """`name@2` or `name` (latest) → (name, version), checked against the store."""
        meta = self.version(*split_ref(ref))
        return meta.name, meta.version

    def path(self, name: str, version: int) -> Path:
        """The stored data file of a version."""
        meta = self.version(name, version)
        return self.ws.dataset_dir(name) / f"v{meta.version}" / meta.file

    def read(self, name: str, version: int) -> Table:
        meta = self.version(name, version)
        return read_file(self.path(name, version), fmt=meta.format, split=meta.text_split or "paragraph", display=meta.ref, encoding=meta.encoding)

    def preview(self, name: str, version: int, offset: int = 0, limit: int = 20) -> PreviewPage:
        if offset < 0:
            raise DataError("offset must be 0 or more", field="offset")
        if not 0 <= limit <= MAX_PREVIEW_ROWS:
            raise DataError(f"limit must be between 0 and {MAX_PREVIEW_ROWS}", field="limit")
        meta = self.version(name, version)
        page = read_preview(
            self.path(name, version), offset, limit, fmt=meta.format, split=meta.text_split or "paragraph", display=meta.ref, encoding=meta.encoding
        )
        rows = [{c: row.get(c) for c in meta.columns} for row in page.rows]
        return PreviewPage(columns=meta.columns, rows=rows, total=meta.rows, offset=offset, limit=limit)

    # -- jobs ---------------------------------------------------------------------
    def snapshot_into(self, name: str, version: int, dest_dir: Path) -> Path:
        """Copy a version into `dest_dir/<name>@<version>/` (a job's `files/`); return the data file's path.

        meta.json is copied beside it, so the job folder alone says how to read the file.
        """
        meta = self.version(name, version)
        target = Path(dest_dir) / meta.ref
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.ws.dataset_dir(name) / f"v{meta.version}" / meta.file, target / meta.file)
        write_meta(target, meta)
        return target / meta.file

    def jobs_using(self, name: str, version: int | None = None) -> list[str]:
        """Jobs whose resolved.json names this dataset (any version when `version` is None)."""
        from nocodetune.records.job import iter_resolved

        return [
            job for job, resolved in iter_resolved(self.ws)
            if any(d.name == name and (version is None or d.version == version) for d in resolved.datasets)
        ]

    # -- deleting -----------------------------------------------------------------
    def delete_version(self, name: str, version: int, force: bool = False) -> DatasetVersionMeta:
        with self._lock(check_name(name, "dataset name")):
            meta = self.version(name, version)
            self._refuse_if_used(name, version, force)
            self._remove(self.ws.dataset_dir(name) / f"v{meta.version}")
            if not self._versions(name):
                self._remove(self.ws.dataset_dir(name))
            return meta

    def delete(self, name: str, force: bool = False) -> list[DatasetVersionMeta]:
        with self._lock(check_name(name, "dataset name")):
            info = self.get(name)
            self._refuse_if_used(name, None, force)
            self._remove(self.ws.dataset_dir(name))
            return info.versions

    def _refuse_if_used(self, name: str, version: int | None, force: bool) -> None:
        users = self.jobs_using(name, version)
        if users and not force:
            what = f"{name}@{version}" if version is not None else f"dataset {name!r}"
            raise ConflictError(
                f"{what} is used by jobs: {', '.join(users)}",
                field="dataset",
                hint="delete those jobs first, or force it (the jobs keep their own copy under jobs/<job>/files)",
            )

    def _remove(self, folder: Path) -> None:
        """Rename away first (one atomic step), then delete at leisure."""
        trash = self.ws.new_tmp_dir("trash-")
        os.rename(folder, trash / folder.name)
        shutil.rmtree(trash, ignore_errors=True)
