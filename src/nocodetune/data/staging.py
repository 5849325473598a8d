"""Receiving a dataset file into the workspace's staging area before it becomes a version.

Bytes are hashed and counted as they arrive (an upload is never held in memory), the size
limit is enforced while writing, and a failure removes the staging folder, so a refused
file leaves nothing behind. The user's file name gives only the extension and the
`original_filename` metadata; the stored name is rebuilt from safe characters.
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import BinaryIO

from nocodetune.data.formats import detect_format, extension_of
from nocodetune.errors import DataError, NocodetuneError, UnsafeNameError
from nocodetune.workspace import Workspace

CHUNK_BYTES = 1 << 20
_UNSAFE_CHARS_RE = re.compile(r"[^A-Za-z0-9._-]+")
_CONTROL_OR_BIDI_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_RESERVED_STEMS = {"meta", "con", "prn", "aux", "nul"}  # meta.json sits beside the data file


class TooLargeError(DataError):
    """The file is larger than the configured upload limit."""

    status_code = 413


class StorageFullError(NocodetuneError):
    """The workspace's disk (or the user's quota) filled up while a dataset was being stored."""

    status_code = 507


_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


@contextmanager
def disk_errors(what: str, file: str | None = None) -> Iterator[None]:
    """A full disk while writing becomes a StorageFullError saying what was being written."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _FULL_ERRNOS:
            raise
        reason = os.strerror(exc.errno).lower() if exc.errno else "no space left on device"
        raise StorageFullError(
            f"{reason} while {what}; nothing was stored",
            file=file,
            hint="free some space on the disk that holds the workspace (or raise the quota) and add the file again",
        ) from None

def check_original_filename(filename: str) -> str:
    """Refuse a file name that is a path: it is metadata, and must not look like somewhere to write."""
    bad = not filename or len(filename) > 255 or filename in {".", ".."}
    bad = bad or any(c in filename for c in ("/", "\\", "\x00")) or ".." in filename
    if bad:
        raise UnsafeNameError(
            f"invalid file name {filename!r}: give a plain file name such as reviews.csv, not a path",
            field="filename",
            file=filename if filename and "\x00" not in filename else None,
        )
    if _CONTROL_OR_BIDI_RE.search(filename):  # a line break or a right-to-left override would disguise the name where it is shown
        raise UnsafeNameError(
            f"invalid file name {filename!r}: it contains control or text-direction characters",
            field="filename",
            hint="rename the file to plain letters, digits, spaces, '.', '-' and '_'",
        )
    return filename


def safe_file_name(original_filename: str) -> str:
    """The name a version's data file is stored under: safe characters of the stem + the extension."""
    ext = extension_of(original_filename)
    stem = original_filename[: -len(ext) - 1] if ext else original_filename
    stem = _UNSAFE_CHARS_RE.sub("_", stem).strip("._-")[:80]
    if not stem or stem.lower() in _RESERVED_STEMS:
        stem = "data"
    return f"{stem}.{ext}"


STALE_AFTER_S = 24 * 3600
STAGING_PREFIXES = ("dataset-", "trash-")


def remove_stale_staging(ws: Workspace, max_age_s: float = STALE_AFTER_S) -> list[str]:
    """Delete staging folders a crashed add or delete left behind; return their names."""
    if not ws.tmp.is_dir():
        return []
    cutoff = time.time() - max_age_s
    removed = []
    for folder in ws.tmp.iterdir():
        try:
            stale = folder.is_dir() and folder.name.startswith(STAGING_PREFIXES) and folder.stat().st_mtime < cutoff
        except OSError:
            continue  # removed meanwhile
        if stale:
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


class StagedFile:
    """A file being written into `.tmp/` of the workspace; `discard()` removes every trace."""

    def __init__(self, ws: Workspace, original_filename: str, max_bytes: int | None = None) -> None:
        self.original_filename = check_original_filename(original_filename)
        self.format = detect_format(original_filename)  # an unsupported type fails before a byte is written
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()
        self._fh: BinaryIO | None = None
        self.committed = False  # set once `dir` has been renamed into files/
        with disk_errors(f"receiving {original_filename}", original_filename):
            self.dir = ws.new_tmp_dir("dataset-")
            self.path = self.dir / safe_file_name(original_filename)
            try:
                self._fh = open(self.path, "wb")
            except BaseException:
                shutil.rmtree(self.dir, ignore_errors=True)
                raise

    def write(self, chunk: bytes) -> None:
        if self._fh is None:
            raise RuntimeError("staged file is already closed")
        self.size += len(chunk)
        if self.max_bytes is not None and self.size > self.max_bytes:
            self.discard()
            mib = self.max_bytes / (1 << 20)
            raise TooLargeError(
                f"{self.original_filename} is larger than the upload limit of {mib:g} MiB",
                file=self.original_filename,
                hint="raise NOCODETUNE_MAX_UPLOAD_MB, or add the file with `nocodetune data add` on the server",
            )
        self._hash.update(chunk)
        try:
            with disk_errors(f"receiving {self.original_filename} ({self.size} bytes so far)", self.original_filename):
                self._fh.write(chunk)
        except StorageFullError:
            self.discard()
            raise

    def copy_from(self, source: BinaryIO) -> None:
        while chunk := source.read(CHUNK_BYTES):
            self.write(chunk)

    def finish(self) -> str:
        """Flush the file to disk and close it; return its sha256."""
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                with disk_errors(f"storing {self.original_filename} ({self.size} bytes)", self.original_filename):
                    try:
                        fh.flush()
                        os.fsync(fh.fileno())
                    finally:
                        fh.close()
            except StorageFullError:
                self.discard()
                raise
        return self._hash.hexdigest()

    def discard(self) -> None:
        if self._fh is not None:
            fh, self._fh = self._fh, None
            try:
                fh.close()
            except OSError:
                pass  # a full disk cannot flush what is being thrown away anyway
        if not self.committed:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "StagedFile":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.discard()
