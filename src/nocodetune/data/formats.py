"""Which file formats NoCodeTune reads, told apart by file extension.

The extension is the only thing taken from a user's file name, so this is also where an
upload's name is reduced to something safe.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Literal

from nocodetune.errors import DataError

FileFormat = Literal["csv", "tsv", "json", "jsonl", "parquet", "excel", "txt", "md", "html", "pdf", "docx"]
TextSplit = Literal["paragraph", "document"]

# extension (lower case, no dot) -> format
EXTENSIONS: dict[str, FileFormat] = {
    "csv": "csv",
    "tsv": "tsv",
    "tab": "tsv",
    "json": "json",
    "jsonl": "jsonl",
    "ndjson": "jsonl",
    "parquet": "parquet",
    "pq": "parquet",
    "xlsx": "excel",
    "xlsm": "excel",
    "txt": "txt",
    "text": "txt",
    "md": "md",
    "markdown": "md",
    "html": "html",
    "htm": "html",
    "pdf": "pdf",
    "docx": "docx",
}
# formats whose rows are pieces of running text in a single `text` column
DOCUMENT_FORMATS: frozenset[str] = frozenset({"txt", "md", "html", "pdf", "docx"})
# formats stored as text, whose encoding is detected (or given by the user)
TEXT_FORMATS: frozenset[str] = frozenset({"csv", "tsv", "json", "jsonl", "txt", "md", "html"})
_HINTS = {
    "xls": "save the sheet as .xlsx (Excel 2007 or later)",
    "doc": "save the document as .docx",
    "gz": "decompress the file first",
    "zip": "extract the file from the archive first",
}


def extension_of(filename: str) -> str:
    """The lower-case extension of a file name, without the dot ('' when there is none)."""
    return PurePath(filename).suffix.lower().lstrip(".")


def detect_format(filename: str) -> FileFormat:
    """The format implied by a file name's extension, or a DataError listing the supported ones."""
    ext = extension_of(filename)
    if ext in EXTENSIONS:
        return EXTENSIONS[ext]
    supported = ", ".join(f".{e}" for e in EXTENSIONS)
    what = f"extension .{ext}" if ext else "no extension"
    raise DataError(
        f"cannot read {filename!r}: {what} is not a supported dataset format",
        file=filename,
        hint=_HINTS.get(ext, f"supported: {supported}"),
    )
