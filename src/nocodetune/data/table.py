"""`Table`: what every reader returns — rows as dicts, the column order, the format.

Values are made JSON-safe here (dates → ISO strings, a Parquet/Excel NaN → None) so that
a preview can go straight to the REST API and a row straight into a training example.
Values that would be silently wrong are refused with the row and column: JSON's
non-standard NaN/Infinity, numbers out of range, lone surrogates, binary cells, duplicate
keys and column names, values nested absurdly deep.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from nocodetune.data.decode import DecodedText, encoding_notes
from nocodetune.errors import DataError, NocodetuneError

Row = dict[str, Any]


@dataclass
class Table:
    rows: list[Row]
    columns: list[str]
    format: str
    encoding: str | None = None
    encoding_source: str | None = None  # text formats: 'bom', 'utf-8', 'detected' or 'given'
    encoding_alternatives: list[str] = field(default_factory=list)  # other encodings that would also fit (detected only)
    text_split: str | None = None  # document formats only: 'paragraph' or 'document'
    notes: list[str] = field(default_factory=list)  # harmless fixes made while reading (renamed headers ...)
    row_count: int | None = None  # set when the rows were only counted, not kept (see RowCollector)

    @property
    def num_rows(self) -> int:
        return len(self.rows) if self.row_count is None else self.row_count


def with_encoding(table: Table, decoded: DecodedText) -> Table:
    """The table, with what decoding said about the file's encoding."""
    table.encoding = decoded.encoding
    table.encoding_source = decoded.source
    table.encoding_alternatives = [a.encoding for a in decoded.alternatives]
    table.notes = [*encoding_notes(decoded), *table.notes]
    return table


class RowCollector:
    """Keeps the rows a reader yields, or only counts them.

    Counting is how a large file is checked before it is stored: every row is parsed and
    validated, but a 500 MB CSV does not become millions of dicts in memory.
    """

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.rows: list[Row] = []
        self.count = 0
        self._columns: dict[str, None] = {}

    def add(self, row: Row, *, new_columns: bool = False) -> None:
        """Take one row; `new_columns` when rows may bring keys the earlier ones lacked (JSONL)."""
        self.count += 1
        if new_columns:
            self._columns.update(dict.fromkeys(row))
        if self.keep:
            self.rows.append(row)

    def table(self, fmt: str, columns: list[str] | None = None, **extra: Any) -> Table:
        """The Table; rows missing a column get None for it."""
        names = list(self._columns) if columns is None else columns
        rows = [r if len(r) == len(names) else {c: r.get(c) for c in names} for r in self.rows]
        return Table(rows=rows, columns=names, format=fmt, row_count=None if self.keep else self.count, **extra)


MAX_DEPTH = 100  # nesting levels a cell value may have: chat messages need 3, tool calls a dozen


class CellError(Exception):
    """A cell value that cannot be used; `path` says where inside the row (column, then nested keys)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[str | int] = []

    def where(self) -> str:
        """'text', or 'messages[2].content' for a nested value."""
        out = ""
        path = self.path if len(self.path) <= 8 else [*self.path[:4], "…", *self.path[-2:]]
        for part in path:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
        return out


class InvalidNumber:
    """What the JSON readers put where a file has NaN, Infinity or an out-of-range number: refused by `jsonable`."""

    def __init__(self, what: str) -> None:
        self.what = what  # e.g. "NaN, which is not valid JSON (write null for a missing value)"


class DuplicateKeys(dict):  # type: ignore[type-arg]
    """A JSON object that named a key twice (the json module would keep the last value silently)."""

    def __init__(self, pairs: list[tuple[str, Any]], key: str) -> None:
        super().__init__(pairs)
        self.duplicate = key


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe copy of one cell value, or a CellError saying why the value cannot be used."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, str):
        if _SURROGATE_RE.search(value):
            raise CellError(f"holds a lone surrogate \\u{ord(_SURROGATE_RE.search(value).group()):04x}, which is not valid Unicode")  # type: ignore[union-attr]
        return value
    if isinstance(value, float):
        if math.isinf(value):
            raise CellError(f"holds an infinite number ({value}), which cannot be used as data")
        return None if math.isnan(value) else value  # NaN is how Parquet and Excel mark an empty cell
    if isinstance(value, InvalidNumber):
        raise CellError(f"holds {value.what}")
    if depth >= MAX_DEPTH and isinstance(value, (dict, list, tuple)):
        raise CellError(f"is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        if isinstance(value, DuplicateKeys):
            raise CellError(f"names the key {value.duplicate!r} twice in one object")
        out = {}
        for k, v in value.items():
            key = str(k)
            try:
                if _SURROGATE_RE.search(key):
                    raise CellError("has a key holding a lone surrogate, which is not valid Unicode")
                out[key] = jsonable(v, depth + 1)
            except CellError as exc:
                exc.path.insert(0, key)
                raise
        return out
    if isinstance(value, (list, tuple)):
        items = []
        for i, v in enumerate(value):
            try:
                items.append(jsonable(v, depth + 1))
            except CellError as exc:
                exc.path.insert(0, i)
                raise
        return items
    if isinstance(value, decimal.Decimal):
        return jsonable(float(value), depth)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray)):
        try:
            return jsonable(bytes(value).decode("utf-8"), depth)
        except UnicodeDecodeError:
            raise CellError("holds binary data that is not UTF-8 text") from None
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist(), depth)
    return str(value)


def clean_row(record: dict[Any, Any], display: str, row: int, label: str = "row") -> Row:
    """A JSON-safe row, or a DataError naming the file, the row and the column of the bad value."""
    try:
        cleaned = jsonable(record)
    except CellError as exc:
        column = exc.where()
        where = f"{label} {row}, column {column!r}" if column else f"{label} {row}"
        raise DataError(f"{display}: {where} {exc.reason}", file=display, row=row, field=str(exc.path[0]) if exc.path else None) from None
    return cleaned  # type: ignore[no-any-return]


_QUIETED = False


def _quiet_libraries() -> None:
    """Keep the parsing libraries' repair notes off stderr: openpyxl and python-docx warn, pypdf logs
    each object it repairs. A broken file gets one clear error from us; a readable one needs no notes."""
    global _QUIETED
    if not _QUIETED:
        import logging
        import warnings

        for module in ("openpyxl", "pypdf", "docx", "bs4"):
            warnings.filterwarnings("ignore", module=module)
        logging.getLogger("pypdf").setLevel(logging.CRITICAL)
        _QUIETED = True


@contextmanager
def library_errors(display: str, what: str, hint: str | None = None) -> Iterator[None]:
    """Whatever a parsing library (pyarrow, openpyxl, pypdf, python-docx, bs4) raises on a malformed
    file becomes a DataError naming the file: these libraries raise dozens of exception types,
    and a traceback or a 500 is never the right answer to a broken upload."""
    _quiet_libraries()
    try:
        yield
    except NocodetuneError:
        raise
    except RecursionError:
        raise DataError(f"{display} is nested too deeply to be read as {what}", file=display, hint=hint) from None
    except MemoryError:
        raise DataError(f"{display} needs more memory than is available to read it as {what}", file=display, hint=hint) from None
    except Exception as exc:  # noqa: BLE001 - see the docstring
        detail = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise DataError(f"{display} is not a readable {what}: {detail}", file=display, hint=hint) from None


def unique_headers(raw: list[Any], display: str, line: int | None = None) -> tuple[list[str], list[str]]:
    """Column names from a header row, plus notes on what was filled in.

    An empty header becomes `column_<n>` (noted). Two columns with the same name are
    refused: renaming one silently (`text_2`) would train on the wrong column without a word.
    """
    names: list[str] = []
    notes: list[str] = []
    first_seen: dict[str, int] = {}
    for i, value in enumerate(raw, start=1):
        name = "" if value is None else str(value).strip()
        if not name:
            name = f"column_{i}"
            notes.append(f"header of column {i} is empty; named it {name!r}")
        if _SURROGATE_RE.search(name):
            raise DataError(f"{display}: the header of column {i} is not valid Unicode", file=display, row=line)
        if name in first_seen:
            raise DataError(
                f"{display}: columns {first_seen[name]} and {i} are both named {name!r}",
                file=display,
                row=line,
                field=name,
                hint="give every column its own header; NoCodeTune will not guess which one you meant",
            )
        first_seen[name] = i
        names.append(name)
    return names, notes


def records_table(records: list[Any], fmt: str, display: str, *, first_row: int = 1, row_label: str = "record") -> Table:
    """Rows from a list of JSON objects; every row gets every column (None where missing)."""
    columns: dict[str, None] = {}
    rows: list[Row] = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(
                f"{display}: {row_label} {first_row + i} is not an object of column: value (found {_json_type(record)})",
                file=display,
                row=first_row + i,
            )
        row = clean_row(record, display, first_row + i, row_label)
        for key in row:
            columns.setdefault(key, None)
        rows.append(row)
    names = list(columns)
    return Table(rows=[{c: r.get(c) for c in names} for r in rows], columns=names, format=fmt)


def _json_type(value: Any) -> str:
    if isinstance(value, InvalidNumber):
        return value.what.split(",")[0]
    return type(value).__name__
