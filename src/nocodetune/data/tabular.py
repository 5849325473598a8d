"""Readers for tabular files: CSV/TSV, JSON, JSONL, Parquet and Excel.

Each format has a full reader (`read_*`, which validates every row and names the line or
row that is wrong) and a streaming one (`iter_*`) that previews and counts rows without
loading the file. pyarrow and openpyxl are imported only when such a file is read.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from nocodetune.data.decode import SAMPLE_BYTES, decode_text, sniff_encoding
from nocodetune.data.table import Row, RowCollector, Table, jsonable, records_table, unique_headers
from nocodetune.errors import DataError

_DELIMITERS = ",;\t|"
_RECORD_KEYS = ("data", "rows", "records", "examples", "items", "train")


# -- CSV / TSV -----------------------------------------------------------------------
def _allow_big_fields() -> None:
    # training texts are often longer than csv's default 128 KiB field limit
    if csv.field_size_limit() < 2**30:
        csv.field_size_limit(2**30)


def sniff_delimiter(sample: str) -> str:
    """The delimiter of a CSV from its first lines: csv.Sniffer, checked against the header."""
    sample = sample[: sample.rfind("\n") + 1] or sample  # whole lines only
    first_line = sample.split("\n", 1)[0]
    try:
        delimiter = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
        if delimiter in first_line:
            return delimiter
    except csv.Error:
        pass
    counts = {d: first_line.count(d) for d in _DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


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
            header, fixes = unique_headers(fields)
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


def read_delimited(path: Path, fmt: str, display: str, keep_rows: bool = True) -> Table:
    decoded = decode_text(path.read_bytes(), display)
    delimiter = "\t" if fmt == "tsv" else sniff_delimiter(decoded.text[:65536])
    notes: list[str] = []
    collector = RowCollector(keep_rows)
    columns: list[str] = []
    for columns, row in _delimited_rows(text_lines(decoded.text), delimiter, display, notes):
        collector.add(row)
    table = collector.table(fmt, columns, encoding=decoded.encoding, notes=notes)
    if delimiter not in (",", "\t"):
        table.notes.append(f"delimiter detected: {delimiter!r}")
    return table


def _open_text(path: Path, display: str, encoding: str | None) -> TextIO:
    """The file as text, in `encoding` (known from the store's meta) or the one its first bytes show."""
    if encoding is None:
        with open(path, "rb") as fh:
            encoding = sniff_encoding(fh.read(SAMPLE_BYTES), display)
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


# -- JSON Lines ----------------------------------------------------------------------
def _jsonl_record(line: str, number: int, display: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{display}: line {number} is not valid JSON: {exc.msg} (column {exc.colno})",
            file=display,
            row=number,
            hint="each line of a .jsonl file must be one complete JSON object",
        ) from None


def _jsonl_lines(lines: Iterable[str], display: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(lines, start=1):
        if line.strip():
            yield number, _jsonl_record(line, number, display)


def _jsonl_object(record: Any, number: int, display: str) -> dict[str, Any]:
    if not isinstance(record, dict):
        raise DataError(
            f"{display}: line {number} is a JSON {type(record).__name__}, expected an object of column: value",
            file=display,
            row=number,
        )
    return record


def read_jsonl(path: Path, display: str, keep_rows: bool = True) -> Table:
    decoded = decode_text(path.read_bytes(), display)
    collector = RowCollector(keep_rows)
    for number, record in _jsonl_lines(text_lines(decoded.text), display):
        obj = _jsonl_object(record, number, display)
        collector.add({str(k): jsonable(v) for k, v in obj.items()} if keep_rows else obj, new_columns=True)
    return collector.table("jsonl", encoding=decoded.encoding)


def iter_jsonl(path: Path, display: str, encoding: str | None = None) -> Iterator[Row]:
    stream = _open_text(path, display, encoding)
    with stream:
        try:
            for number, record in _jsonl_lines(stream, display):
                yield {str(k): jsonable(v) for k, v in _jsonl_object(record, number, display).items()}
        except UnicodeDecodeError as exc:
            raise _decode_guard(display, exc) from None


# -- JSON ----------------------------------------------------------------------------
def _records_of(data: Any, display: str) -> list[Any]:
    """The list of records in a JSON document of any of the usual shapes."""
    if isinstance(data, list):
        if data and all(isinstance(x, str) for x in data):
            return [{"text": x} for x in data]
        return data
    if isinstance(data, dict):
        for key in _RECORD_KEYS:
            if isinstance(data.get(key), list):
                return _records_of(data[key], display)
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) == 1 and lists[0] and all(isinstance(x, dict) for x in lists[0]):
            return lists[0]
        if data and all(isinstance(v, dict) for v in data.values()):  # {"id1": {...}, ...}
            key = "id" if not any("id" in v for v in data.values()) else "key"
            return [{key: k, **v} for k, v in data.items()]
        if data and all(isinstance(v, list) for v in data.values()):  # columns: {"a": [...], "b": [...]}
            lengths = {len(v) for v in data.values()}
            if len(lengths) == 1:
                return [dict(zip(data, values)) for values in zip(*data.values())]
            raise DataError(f"{display}: the column lists have different lengths {sorted(lengths)}", file=display)
    raise DataError(
        f"{display}: expected an array of records (or an object holding one, like {{\"data\": [...]}}), got a JSON {type(data).__name__}",
        file=display,
    )


def read_json(path: Path, display: str) -> Table:
    decoded = decode_text(path.read_bytes(), display)
    try:
        data = json.loads(decoded.text)
    except json.JSONDecodeError as exc:
        hint = None
        if exc.msg.startswith("Extra data"):
            hint = "the file looks like JSON Lines (one object per line); rename it to .jsonl"
        raise DataError(
            f"{display}: not valid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", file=display, row=exc.lineno, hint=hint
        ) from None
    table = records_table(_records_of(data, display), "json", display)
    table.encoding = decoded.encoding
    return table


# -- Parquet -------------------------------------------------------------------------
def _parquet_file(path: Path, display: str) -> Any:
    import pyarrow
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pyarrow.ArrowException, OSError) as exc:
        raise DataError(f"{display} is not a readable Parquet file: {exc}", file=display) from None


def iter_parquet(path: Path, display: str) -> Iterator[Row]:
    import pyarrow

    pf = _parquet_file(path, display)
    try:
        for batch in pf.iter_batches(batch_size=1024):
            for row in batch.to_pylist():
                yield {str(k): jsonable(v) for k, v in row.items()}
    except pyarrow.ArrowException as exc:
        raise DataError(f"{display}: Parquet data cannot be read: {exc}", file=display) from None


def read_parquet(path: Path, display: str, keep_rows: bool = True) -> Table:
    columns = [str(n) for n in _parquet_file(path, display).schema_arrow.names]
    collector = RowCollector(keep_rows)
    for row in iter_parquet(path, display):
        collector.add(row)
    return collector.table("parquet", columns)


def count_parquet(path: Path, display: str) -> int:
    return int(_parquet_file(path, display).metadata.num_rows)


# -- Excel ---------------------------------------------------------------------------
def _excel_sheet_rows(path: Path, display: str) -> Iterator[tuple[str, int, tuple[Any, ...]]]:
    """(sheet title, Excel row number, values) for the first sheet that has any data."""
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise DataError(f"{display} is not a readable .xlsx workbook: {exc}", file=display, hint="save it from Excel as .xlsx") from None
    try:
        for ws in wb.worksheets:
            found = False
            for number, values in enumerate(ws.iter_rows(values_only=True), start=1):
                if any(v is not None and str(v).strip() for v in values):
                    found = True
                    yield ws.title, number, values
            if found:
                return
    finally:
        wb.close()


def _excel_rows(path: Path, display: str, notes: list[str] | None = None) -> Iterator[tuple[list[str], Row]]:
    """Yield (header, row) for each data row of the first sheet with data; the first row is the header."""
    header: list[str] | None = None
    for sheet, number, values in _excel_sheet_rows(path, display):
        if header is None:
            width = max(i for i, v in enumerate(values, start=1) if v is not None and str(v).strip())
            header, fixes = unique_headers(list(values[:width]))
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
        yield header, {h: jsonable(v) for h, v in zip(header, padded)}


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
