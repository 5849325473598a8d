"""Readers for tabular files: CSV/TSV, JSON, JSONL, Parquet and Excel.

Each format has a full reader (`read_*`, which validates every row and names the line or
row that is wrong) and a streaming one (`iter_*`) that previews and counts rows without
loading the file. pyarrow and openpyxl are imported only when such a file is read.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from nocodetune.data.decode import decode_text, file_encoding
from nocodetune.data.table import (
    MAX_DEPTH,
    DuplicateKeys,
    InvalidNumber,
    Row,
    RowCollector,
    Table,
    clean_row,
    library_errors,
    records_table,
    unique_headers,
    with_encoding,
)
from nocodetune.errors import DataError

_DELIMITERS = ",;\t|"
_SNIFF_RECORDS = 50
_RECORD_KEYS = ("data", "rows", "records", "examples", "items", "train")


# -- CSV / TSV -----------------------------------------------------------------------
def _allow_big_fields() -> None:
    # training texts are often longer than csv's default 128 KiB field limit
    if csv.field_size_limit() < 2**30:
        csv.field_size_limit(2**30)


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV from its first records: the candidate that splits them into the
    same number (≥ 2) of fields most consistently; ',' for a one-column file.

    The csv module parses the sample once per candidate, in linear time. (csv.Sniffer's
    regular expressions backtrack: a 60 KB line of quotes and commas took a minute.)
    """
    best, best_score = ",", (0.0, 0)
    for delimiter in _DELIMITERS:
        try:
            records = list(itertools.islice(csv.reader(text_lines(sample), delimiter=delimiter), _SNIFF_RECORDS))
        except csv.Error:
            continue
        counts = [len(r) for r in records if any(f.strip() for f in r)]
        if not counts or counts[0] < 2:
            continue
        score = (sum(1 for c in counts if c == counts[0]) / len(counts), counts[0])
        if score[0] > best_score[0]:  # ties go to the earlier candidate: ',' before ';' before tab before '|'
            best, best_score = delimiter, score
    return best


def text_lines(text: str) -> Iterator[str]:
    """Lines of `text` with their endings, one at a time (io.StringIO would copy the whole text)."""
    if "\n" not in text and "\r" in text:  # classic Mac line endings
        text = text.replace("\r", "\n")
    start = 0
    while start < len(text):
        end = text.find("\n", start)
        end = len(text) if end < 0 else end + 1
        yield text[start:end]
        start = end


def _delimited_rows(stream: Iterable[str], delimiter: str, display: str, notes: list[str] | None = None) -> Iterator[tuple[list[str], Row]]:
    """Yield (header, row) for each data row; blank lines are skipped, header fixes go to `notes`."""
    _allow_big_fields()
    reader = csv.reader(stream, delimiter=delimiter)
    header: list[str] | None = None
    line = 1  # physical line where the next record starts
    while True:
        try:
            fields = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{display}: line {reader.line_num} cannot be parsed as CSV: {exc}", file=display, row=reader.line_num) from None
        start, line = line, reader.line_num + 1
        if not any(f.strip() for f in fields):
            continue
        if header is None:
            header, fixes = unique_headers(fields, display, start)
            if notes is not None:
                notes.extend(fixes)
            continue
        if len(fields) != len(header):
            name = "tab" if delimiter == "\t" else repr(delimiter)
            raise DataError(
                f"{display}: row at line {start} has {len(fields)} field{'s' if len(fields) != 1 else ''}, header has {len(header)}",
                file=display,
                row=start,
                hint=f"the delimiter is {name}; a value containing it (or a line break) must be wrapped in double quotes",
            )
        yield header, dict(zip(header, fields))


def read_delimited(path: Path, fmt: str, display: str, keep_rows: bool = True, encoding: str | None = None) -> Table:
    decoded = decode_text(path.read_bytes(), display, encoding)
    delimiter = "\t" if fmt == "tsv" else sniff_delimiter(decoded.text[:65536])
    notes: list[str] = []
    collector = RowCollector(keep_rows)
    columns: list[str] = []
    for columns, row in _delimited_rows(text_lines(decoded.text), delimiter, display, notes):
        collector.add(row)
    table = with_encoding(collector.table(fmt, columns, notes=notes), decoded)
    if delimiter not in (",", "\t"):
        table.notes.append(f"delimiter detected: {delimiter!r}")
    return table


def _open_text(path: Path, display: str, encoding: str | None) -> TextIO:
    """The file as text, in `encoding` (known from the store's meta) or the one the whole file shows."""
    if encoding is None:
        encoding = file_encoding(path, display)
    return open(path, encoding=encoding, newline="")


def _decode_guard(display: str, exc: UnicodeDecodeError) -> DataError:
    return DataError(f"{display} has undecodable bytes ({exc.reason})", file=display, hint="save the file as UTF-8")


def iter_delimited(path: Path, fmt: str, display: str, encoding: str | None = None) -> Iterator[Row]:
    stream = _open_text(path, display, encoding)
    with stream:
        try:
            sample = stream.read(65536)
            stream.seek(0)
            delimiter = "\t" if fmt == "tsv" else sniff_delimiter(sample)
            for _, row in _delimited_rows(stream, delimiter, display):
                yield row
        except UnicodeDecodeError as exc:
            raise _decode_guard(display, exc) from None


# -- JSON values ---------------------------------------------------------------------
_MAX_INT_DIGITS = 4300  # Python's limit for reading an integer from text


def _parse_float(token: str) -> float | InvalidNumber:
    value = float(token)
    return InvalidNumber(f"{token}, a number too large to represent") if math.isinf(value) else value


def _parse_int(token: str) -> int | InvalidNumber:
    digits = len(token.lstrip("-"))
    if digits > _MAX_INT_DIGITS:
        return InvalidNumber(f"a {digits}-digit number; numbers longer than {_MAX_INT_DIGITS} digits cannot be read")
    return int(token)


def _parse_constant(token: str) -> InvalidNumber:
    return InvalidNumber(f"{token}, which is not valid JSON (write null for a missing value, or a number)")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicate = next(k for k, _ in pairs if k in seen or seen.add(k))  # type: ignore[func-returns-value]
        return DuplicateKeys(pairs, duplicate)
    return obj


def json_loads(text: str) -> Any:
    """json.loads that marks what the json module would accept silently: NaN/Infinity, numbers out of range, duplicate keys.

    The marks are refused by `table.jsonable` with the row and column they sit in.
    """
    return json.loads(text, parse_constant=_parse_constant, parse_float=_parse_float, parse_int=_parse_int, object_pairs_hook=_object)


_JSON_TOKEN_RE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def nesting_line(text: str, limit: int = MAX_DEPTH) -> int | None:
    """The line where JSON text first nests deeper than `limit` (strings skipped)."""
    depth = 0
    for match in _JSON_TOKEN_RE.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > limit:
                return text.count("\n", 0, match.start()) + 1
        elif token in "]}":
            depth -= 1
    return None


def _too_deep(display: str, text: str, line_offset: int = 0) -> DataError:
    line = nesting_line(text)
    where = f" at line {line + line_offset}" if line is not None else ""
    return DataError(
        f"{display}: JSON nested more than {MAX_DEPTH} levels deep{where}",
        file=display,
        row=line + line_offset if line is not None else None,
        hint="a dataset row holds text, numbers and a few levels of lists/objects (chat messages); this file looks machine-generated or corrupt",
    )


# -- JSON Lines ----------------------------------------------------------------------
def _jsonl_record(line: str, number: int, display: str) -> Any:
    try:
        return json_loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{display}: line {number} is not valid JSON: {exc.msg} (column {exc.colno})",
            file=display,
            row=number,
            hint="each line of a .jsonl file must be one complete JSON object",
        ) from None
    except RecursionError:
        raise _too_deep(display, line, number - 1) from None


def _jsonl_lines(lines: Iterable[str], display: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, _jsonl_record(line, number, display)


def _jsonl_row(record: Any, number: int, display: str) -> Row:
    if not isinstance(record, dict):
        kind = record.what.split(",")[0] if isinstance(record, InvalidNumber) else type(record).__name__
        raise DataError(
            f"{display}: line {number} is a JSON {kind}, expected an object of column: value",
            file=display,
            row=number,
        )
    return clean_row(record, display, number, "line")


def read_jsonl(path: Path, display: str, keep_rows: bool = True, encoding: str | None = None) -> Table:
    decoded = decode_text(path.read_bytes(), display, encoding)
    collector = RowCollector(keep_rows)
    for number, record in _jsonl_lines(text_lines(decoded.text), display):
        collector.add(_jsonl_row(record, number, display), new_columns=True)
    return with_encoding(collector.table("jsonl"), decoded)


def iter_jsonl(path: Path, display: str, encoding: str | None = None) -> Iterator[Row]:
    stream = _open_text(path, display, encoding)
    with stream:
        try:
            for number, record in _jsonl_lines(stream, display):
                yield _jsonl_row(record, number, display)
        except UnicodeDecodeError as exc:
            raise _decode_guard(display, exc) from None


# -- JSON ----------------------------------------------------------------------------
def _no_duplicates(obj: Any, display: str, what: str) -> None:
    if isinstance(obj, DuplicateKeys):
        raise DataError(f"{display}: {what} names the key {obj.duplicate!r} twice", file=display, field=obj.duplicate)


def _records_of(data: Any, display: str) -> list[Any]:
    """The list of records in a JSON document of any of the usual shapes."""
    if isinstance(data, list):
        if data and all(isinstance(x, str) for x in data):
            return [{"text": x} for x in data]
        return data
    if isinstance(data, dict):
        _no_duplicates(data, display, "the top-level object")
        for key in _RECORD_KEYS:
            if isinstance(data.get(key), list):
                return _records_of(data[key], display)
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1 and lists[0] and all(isinstance(x, dict) for x in lists[0]):
            return lists[0]
        if data and all(isinstance(v, dict) for v in data.values()):  # {"id1": {...}, ...}
            key = "id" if not any("id" in v for v in data.values()) else "key"
            for k, v in data.items():
                _no_duplicates(v, display, f"the object under {k!r}")
            return [{key: k, **v} for k, v in data.items()]
        if data and all(isinstance(v, list) for v in data.values()):  # columns: {"a": [...], "b": [...]}
            lengths = {len(v) for v in data.values()}
            if len(lengths) == 1:
                return [dict(zip(data, values)) for values in zip(*data.values())]
            raise DataError(f"{display}: the column lists have different lengths {sorted(lengths)}", file=display)
    kind = data.what.split(",")[0] if isinstance(data, InvalidNumber) else type(data).__name__
    raise DataError(
        f"{display}: expected an array of records (or an object holding one, like {{\"data\": [...]}}), got a JSON {kind}",
        file=display,
    )


def read_json(path: Path, display: str, encoding: str | None = None) -> Table:
    decoded = decode_text(path.read_bytes(), display, encoding)
    try:
        data = json_loads(decoded.text)
    except json.JSONDecodeError as exc:
        hint = None
        if exc.msg.startswith("Extra data"):
            hint = "the file looks like JSON Lines (one object per line); rename it to .jsonl"
        raise DataError(
            f"{display}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=display, row=exc.lineno, hint=hint
        ) from None
    except RecursionError:
        raise _too_deep(display, decoded.text) from None
    return with_encoding(records_table(_records_of(data, display), "json", display), decoded)


# -- Parquet -------------------------------------------------------------------------
def _parquet_file(path: Path, display: str) -> Any:
    import pyarrow.parquet as pq

    with library_errors(display, "Parquet file"):
        pf = pq.ParquetFile(path)
        names = [str(n) for n in pf.schema_arrow.names]
    seen: dict[str, int] = {}
    for i, name in enumerate(names, start=1):
        if name in seen:
            raise DataError(f"{display}: columns {seen[name]} and {i} are both named {name!r}", file=display, field=name, hint="give every column its own name")
        seen[name] = i
    return pf


def iter_parquet(path: Path, display: str) -> Iterator[Row]:
    pf = _parquet_file(path, display)
    number = 0
    with library_errors(display, "Parquet file"):
        for batch in pf.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                number += 1
                yield clean_row(row, display, number)


def read_parquet(path: Path, display: str, keep_rows: bool = True) -> Table:
    columns = [str(n) for n in _parquet_file(path, display).schema_arrow.names]
    collector = RowCollector(keep_rows)
    for row in iter_parquet(path, display):
        collector.add(row)
    return collector.table("parquet", columns)


def count_parquet(path: Path, display: str) -> int:
    return int(_parquet_file(path, display).metadata.num_rows)


# -- Excel ---------------------------------------------------------------------------
_EXCEL_HINT = "save it from Excel as .xlsx"


def _excel_sheet_rows(path: Path, display: str) -> Iterator[tuple[str, int, tuple[Any, ...]]]:
    """(sheet title, Excel row number, values) for the first sheet that has any data."""
    from openpyxl import load_workbook

    with library_errors(display, ".xlsx workbook", _EXCEL_HINT):
        wb = load_workbook(path, read_only=True, data_only=True)
    try:
        with library_errors(display, ".xlsx workbook", _EXCEL_HINT):
            for ws in wb.worksheets:
                found = False
                for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
                    if any(v is not None and str(v).strip() for v in values):
                        found = True
                        yield ws.title, number, values
                if found:
                    return
    finally:
        with library_errors(display, ".xlsx workbook", _EXCEL_HINT):
            wb.close()


def _excel_rows(path: Path, display: str, notes: list[str] | None = None) -> Iterator[tuple[list[str], Row]]:
    """Yield (header, row) for each data row of the first sheet with data; the first row is the header."""
    header: list[str] | None = None
    for sheet, number, values in _excel_sheet_rows(path, display):
        if header is None:
            width = max(i for i, v in enumerate(values, start=1) if v is not None and str(v).strip())
            header, fixes = unique_headers(list(values[:width]), display, number)
            if notes is not None:
                notes.extend([f"read sheet {sheet!r}", *fixes])
            continue
        extra = [i for i, v in enumerate(values[len(header) :], start=len(header) + 1) if v is not None and str(v).strip()]
        if extra:
            raise DataError(
                f"{display}: sheet {sheet!r} row {number} has a value in column {extra[0]}, but the header has {len(header)} columns",
                file=display,
                row=number,
                hint="give every column a header in the first row",
            )
        padded = list(values) + [None] * (len(header) - len(values))
        yield header, clean_row(dict(zip(header, padded)), display, number)


def iter_excel(path: Path, display: str) -> Iterator[Row]:
    for _, row in _excel_rows(path, display):
        yield row


def read_excel(path: Path, display: str, keep_rows: bool = True) -> Table:
    notes: list[str] = []
    collector = RowCollector(keep_rows)
    columns: list[str] = []
    for columns, row in _excel_rows(path, display, notes):
        collector.add(row)
    return collector.table("excel", columns, notes=notes)
