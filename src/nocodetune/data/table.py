"""`Table`: what every reader returns — rows as dicts, the column order, the format.

Values are made JSON-safe here (dates → ISO strings, NaN → None, bytes refused) so that
a preview can go straight to the REST API and a row straight into a training example.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import math
from dataclasses import dataclass, field
from typing import Any

from nocodetune.errors import DataError

Row = dict[str, Any]


@dataclass
class Table:
    rows: list[Row]
    columns: list[str]
    format: str
    encoding: str | None = None
    text_split: str | None = None  # document formats only: 'paragraph' or 'document'
    notes: list[str] = field(default_factory=list)  # harmless fixes made while reading (renamed headers ...)
    row_count: int | None = None  # set when the rows were only counted, not kept (see RowCollector)

    @property
    def num_rows(self) -> int:
        return len(self.rows) if self.row_count is None else self.row_count


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


def jsonable(value: Any) -> Any:
    """A JSON-safe copy of one cell value."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            raise DataError("a cell holds binary data, which cannot be used as text") from None
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist())
    return str(value)


def unique_headers(raw: list[Any]) -> tuple[list[str], list[str]]:
    """Column names made non-empty and unique (`column_3`, `name_2`), plus notes on what changed."""
    names: list[str] = []
    notes: list[str] = []
    seen: set[str] = set()
    for i, value in enumerate(raw, start=1):
        name = "" if value is None else str(value).strip()
        if not name:
            name = f"column_{i}"
            notes.append(f"header of column {i} is empty; named it {name!r}")
        base, n = name, 2
        while name in seen:
            name = f"{base}_{n}"
            n += 1
        if name != base:
            notes.append(f"header {base!r} appears more than once; column {i} named {name!r}")
        seen.add(name)
        names.append(name)
    return names, notes


def records_table(records: list[Any], fmt: str, display: str, *, first_row: int = 1, row_label: str = "record") -> Table:
    """Rows from a list of JSON objects; every row gets every column (None where missing)."""
    columns: dict[str, None] = {}
    rows: list[Row] = []
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise DataError(
                f"{display}: {row_label} {first_row + i} is not an object of column: value (found {type(record).__name__})",
                file=display,
                row=first_row + i,
            )
        row = {str(k): jsonable(v) for k, v in record.items()}
        for key in row:
            columns.setdefault(key, None)
        rows.append(row)
    names = list(columns)
    return Table(rows=[{c: r.get(c) for c in names} for r in rows], columns=names, format=fmt)
