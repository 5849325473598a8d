"""Read any supported dataset file into a `Table` (rows, columns, detected format).

The one entry point for everyone who needs a dataset's rows: the dataset store (to
validate and describe a file before it is kept), job validation and training (to read a
job's snapshot). Errors are `DataError`s naming the file and the line, row or byte
offset; `display` is the name users know the file by (not a temp path).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

from nocodetune.data import documents, tabular
from nocodetune.data.formats import DOCUMENT_FORMATS, TEXT_FORMATS, FileFormat, TextSplit, detect_format
from nocodetune.data.table import Row, Table
from nocodetune.errors import DataError, NotFoundError
from nocodetune.records.dataset import meta_path, read_meta

__all__ = ["Table", "count_rows", "detect_format", "iter_rows", "preview", "read_file", "read_snapshot"]


def _checked(path: Path | str, fmt: str | None, display: str | None) -> tuple[Path, FileFormat, str]:
    path = Path(path)
    display = display or path.name
    if not path.is_file():
        raise NotFoundError(f"file not found: {path}", file=str(path))
    resolved: FileFormat = fmt if fmt else detect_format(display)  # type: ignore[assignment]
    if path.stat().st_size == 0:
        raise DataError(f"{display} is empty", file=display, hint="the file has no bytes; export it again")
    return path, resolved, display


def _read_any(path: Path, fmt: FileFormat, display: str, split: TextSplit, keep_rows: bool = True, encoding: str | None = None) -> Table:
    if encoding and fmt not in TEXT_FORMATS:
        raise DataError(f"an encoding applies to text files only; {display} is a {fmt} file", field="encoding", file=display, hint="leave the encoding out")
    if fmt in ("csv", "tsv"):
        return tabular.read_delimited(path, fmt, display, keep_rows, encoding)
    if fmt == "json":
        return tabular.read_json(path, display, encoding)
    if fmt == "jsonl":
        return tabular.read_jsonl(path, display, keep_rows, encoding)
    if fmt == "parquet":
        return tabular.read_parquet(path, display, keep_rows)
    if fmt == "excel":
        return tabular.read_excel(path, display, keep_rows)
    if fmt in ("txt", "md"):
        return documents.read_plain_text(path, fmt, display, split, encoding)
    if fmt == "html":
        return documents.read_html(path, display, split, encoding)
    if fmt == "pdf":
        return documents.read_pdf(path, display, split)
    if fmt == "docx":
        return documents.read_docx(path, display, split)
    raise DataError(f"no reader for format {fmt!r}", file=display)  # unreachable: formats.EXTENSIONS decides


def read_file(
    path: Path | str,
    *,
    fmt: str | None = None,
    split: TextSplit = "paragraph",
    display: str | None = None,
    keep_rows: bool = True,
    encoding: str | None = None,
) -> Table:
    """Read and check the whole file; a file without data rows is an error.

    `keep_rows=False` checks every row but may only count them (`Table.num_rows`), which is
    how the store validates a large upload without holding it in memory. `encoding` (text
    formats) is the user's or the one a version's meta recorded; without it the whole file
    is looked at to find it.
    """
    path, resolved, display = _checked(path, fmt, display)
    table = _read_any(path, resolved, display, split, keep_rows, encoding)
    if not table.num_rows:
        what = "text" if resolved in DOCUMENT_FORMATS else "data rows"
        raise DataError(f"{display} has no {what}", file=display, hint="a dataset needs at least one row besides the header")
    if resolved not in DOCUMENT_FORMATS:
        table.text_split = None
    return table


def iter_rows(
    path: Path | str, *, fmt: str | None = None, split: TextSplit = "paragraph", display: str | None = None, encoding: str | None = None
) -> Iterator[Row]:
    """Rows one by one; streams CSV/TSV, JSONL, Parquet and Excel without loading the whole file.

    `encoding` (text formats) skips detection when it is already known, e.g. from a version's meta.
    """
    path, resolved, display = _checked(path, fmt, display)
    if resolved in ("csv", "tsv"):
        return tabular.iter_delimited(path, resolved, display, encoding)
    if resolved == "jsonl":
        return tabular.iter_jsonl(path, display, encoding)
    if resolved == "parquet":
        return tabular.iter_parquet(path, display)
    if resolved == "excel":
        return tabular.iter_excel(path, display)
    return iter(_read_any(path, resolved, display, split, encoding=encoding).rows)


def preview(
    path: Path | str,
    offset: int = 0,
    limit: int = 20,
    *,
    fmt: str | None = None,
    split: TextSplit = "paragraph",
    display: str | None = None,
    encoding: str | None = None,
) -> Table:
    """Rows offset..offset+limit, read no further than needed. Columns are those of the rows returned."""
    if offset < 0 or limit < 0:
        raise DataError("offset and limit must not be negative", field="offset" if offset < 0 else "limit")
    rows = list(itertools.islice(iter_rows(path, fmt=fmt, split=split, display=display, encoding=encoding), offset, offset + limit))
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    resolved = fmt or detect_format(display or Path(path).name)
    return Table(rows=rows, columns=list(columns), format=resolved)


def count_rows(path: Path | str, *, fmt: str | None = None, split: TextSplit = "paragraph", display: str | None = None) -> int:
    """Number of data rows; Parquet answers from its footer, the others stream."""
    checked, resolved, shown = _checked(path, fmt, display)
    if resolved == "parquet":
        return tabular.count_parquet(checked, shown)
    return sum(1 for _ in iter_rows(checked, fmt=resolved, split=split, display=shown))


def read_snapshot(data_file: Path | str) -> Table:
    """Read a job's dataset snapshot (`files/<name>@<v>/<file>`), honouring the meta.json beside it."""
    data_file = Path(data_file)
    fmt, split, encoding = None, "paragraph", None
    if meta_path(data_file.parent).is_file():
        meta = read_meta(data_file.parent)
        fmt, split, encoding = meta.format, meta.text_split or "paragraph", meta.encoding
    return read_file(data_file, fmt=fmt, split=split, display=f"{data_file.parent.name}/{data_file.name}", encoding=encoding)
