"""Values that would be read silently wrong are refused, naming the file, the row and the column.

Classes: JSON's non-standard numbers (NaN, Infinity, out of range) that became null; a
column name used twice that became `text_2`; a key used twice that kept its last value;
lone surrogates that crash whoever encodes the text later; nesting that blew Python's
stack; and, the other way round, valid input refused (an escaped NUL in a JSON string).
Plus the inputs that raise from deep inside pyarrow, openpyxl, pypdf and python-docx.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest

from nocodetune.data.readers import iter_rows, read_file
from nocodetune.errors import DataError


def _error(path: Path, data: bytes) -> DataError:
    path.write_bytes(data)
    with pytest.raises(DataError) as info:
        read_file(path)
    return info.value


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
def test_json_non_numbers_are_refused_with_row_and_column(tmp_path: Path, token: str) -> None:
    err = _error(tmp_path / "d.json", f'[{{"text": "a", "score": 1}}, {{"text": "b", "score": {token}}}]'.encode())
    assert (err.file, err.row, err.field) == ("d.json", 2, "score")
    assert err.message.startswith(f"d.json: record 2, column 'score' holds {token}")
    err = _error(tmp_path / "d.jsonl", f'{{"text": "a"}}\n{{"text": "b"}}\n{{"meta": {{"w": [{token}]}}}}\n'.encode())
    assert (err.row, err.field) == (3, "meta") and "line 3, column 'meta.w[0]' holds" in err.message


def test_a_number_too_long_to_read_is_refused(tmp_path: Path) -> None:
    err = _error(tmp_path / "d.jsonl", b'{"id": ' + b"9" * 5000 + b"}\n")
    assert err.row == 1 and "column 'id' holds a 5000-digit number" in err.message


def test_plain_numbers_still_load(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"a": 1.5e300, "b": -0.0, "c": 123456789012345678901234567890, "d": null}\n')
    assert read_file(path).rows == [{"a": 1.5e300, "b": -0.0, "c": 123456789012345678901234567890, "d": None}]


@pytest.mark.parametrize(
    ("name", "content", "columns"),
    [
        ("d.csv", "text,label,text\na,b,c\n", (1, 3)),
        ("d.tsv", "label\ttext\t text \na\tb\tc\n", (2, 3)),  # equal once trimmed
        ("d.csv", "column_2,\na,b\n", (1, 2)),  # an empty header named after an existing one
    ],
)
def test_duplicate_column_names_are_refused(tmp_path: Path, name: str, content: str, columns: tuple[int, int]) -> None:
    err = _error(tmp_path / name, content.encode())
    assert f"columns {columns[0]} and {columns[1]} are both named" in err.message and err.row == 1


def test_duplicate_columns_in_excel_and_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["prompt", "completion", "prompt"])
    wb.active.append(["a", "b", "c"])
    wb.save(tmp_path / "b.xlsx")
    with pytest.raises(DataError, match="b.xlsx: columns 1 and 3 are both named 'prompt'"):
        read_file(tmp_path / "b.xlsx")
    pq.write_table(pa.table([pa.array(["a"]), pa.array(["b"])], names=["text", "text"]), tmp_path / "d.parquet")
    with pytest.raises(DataError, match="d.parquet: columns 1 and 2 are both named 'text'"):
        read_file(tmp_path / "d.parquet")


def test_duplicate_json_keys_are_refused(tmp_path: Path) -> None:
    err = _error(tmp_path / "d.json", b'[{"text": "a"}, {"text": "b", "label": 1, "text": "c"}]')
    assert err.row == 2 and "record 2 names the key 'text' twice" in err.message
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    line = json.dumps(chat).replace('"role": "user"', '"role": "user", "role": "assistant"')
    err = _error(tmp_path / "chat.jsonl", (json.dumps(chat) + "\n" + line + "\n").encode())
    assert err.row == 2 and "line 2, column 'messages[0]' names the key 'role' twice" in err.message
    err = _error(tmp_path / "top.json", b'{"data": [{"a": 1}], "data": [{"a": 2}]}')
    assert "the top-level object names the key 'data' twice" in err.message


def test_escaped_nul_and_control_characters_load(tmp_path: Path) -> None:
    """Escaped, a NUL is just a character of a JSON string: the file is text, not binary."""
    rows = [{"text": "before\u0000after"}, {"text": "bell\u0007 and tab\t"}]
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert read_file(path).rows == rows
    assert list(iter_rows(path)) == rows
    doc = tmp_path / "d.json"
    doc.write_text(json.dumps(rows), encoding="utf-8")
    assert read_file(doc).rows == rows


def test_a_raw_nul_in_jsonl_is_binary_without_talk_of_spreadsheets(tmp_path: Path) -> None:
    err = _error(tmp_path / "d.jsonl", b'{"text": "ok"}\n{"text": "a\x00b"}\n')
    assert err.row == 2 and "binary content at byte offset 26 (line 2)" in err.message
    assert "spreadsheet" not in (err.hint or "") and ".jsonl" in (err.hint or "")


def test_lone_surrogates_are_refused(tmp_path: Path) -> None:
    err = _error(tmp_path / "d.jsonl", b'{"text": "fine \\ud83d\\ude00"}\n{"text": "broken \\ud800 here"}\n')
    assert err.row == 2 and "column 'text' holds a lone surrogate \\ud800" in err.message


@pytest.mark.parametrize("depth", [150, 5000, 200_000])
def test_deep_nesting_is_a_message_naming_the_line(tmp_path: Path, depth: int) -> None:
    nested = "[" * depth + "]" * depth
    err = _error(tmp_path / "deep.json", f'[{{"a": 1}},\n{{"a": {nested}}}]'.encode())
    assert err.file == "deep.json" and "nested more than 100 levels deep" in err.message and err.row == 2
    err = _error(tmp_path / "deep.jsonl", f'{{"a": 1}}\n{{"a": 1}}\n{{"a": {nested}}}\n'.encode())
    assert err.row == 3 and "nested more than 100 levels deep" in err.message


def test_chat_messages_and_tool_calls_are_not_too_deep(tmp_path: Path) -> None:
    schema: dict[str, object] = {"type": "string"}
    for _ in range(20):
        schema = {"type": "object", "properties": {"x": schema}}
    row = {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"parameters": schema}}]}
    path = tmp_path / "tools.jsonl"
    path.write_text(json.dumps(row) + "\n")
    assert read_file(path).rows == [row]


def _rezip(data: bytes, member: str, content: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, content if info.filename == member else source.read(info))
    return out.getvalue()


def _xlsx() -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["text"])
    wb.active.append(["a"])
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _docx() -> bytes:
    import docx

    document = docx.Document()
    document.add_paragraph("hello")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "make", "message"),
    [
        ("sheet.xlsx", lambda: _rezip(_xlsx(), "xl/worksheets/sheet1.xml", b"<worksheet><sheetData><row>"), "not a readable .xlsx workbook"),
        ("book.xlsx", lambda: _rezip(_xlsx(), "xl/workbook.xml", b"not xml <<<"), "not a readable .xlsx workbook"),
        ("body.docx", lambda: _rezip(_docx(), "word/document.xml", b"<w:document><<<"), "not a readable .docx document"),
        ("empty.docx", lambda: _rezip(_docx(), "word/document.xml", b""), "not a readable .docx document"),
        ("cut.xlsx", lambda: _xlsx()[:-200], "not a readable .xlsx workbook"),
        ("cut.docx", lambda: _docx()[: len(_docx()) // 2], "not a readable .docx document"),
    ],
)
def test_errors_from_inside_the_libraries_name_the_file(tmp_path: Path, name: str, make: object, message: str) -> None:
    """On the code before this fix, the first four escaped as lxml/ElementTree tracebacks (a 500 from the API)."""
    err = _error(tmp_path / name, make())  # type: ignore[operator]
    assert err.file == name and message in err.message


def test_parquet_cells_that_cannot_be_text_name_row_and_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"text": pa.array([b"fine", b"\xff\xfe binary"], type=pa.binary())}), tmp_path / "b.parquet")
    err = _error(tmp_path / "b.parquet", (tmp_path / "b.parquet").read_bytes())
    assert err.row == 2 and "b.parquet: row 2, column 'text' holds binary data that is not UTF-8 text" in err.message
    pq.write_table(pa.table({"score": pa.array([1.0, float("nan"), float("inf")])}), tmp_path / "f.parquet")
    err = _error(tmp_path / "f.parquet", (tmp_path / "f.parquet").read_bytes())
    assert err.row == 3 and "column 'score' holds an infinite number" in err.message  # NaN (row 2) is an empty cell


def test_no_library_chatter_on_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """A broken PDF is one DataError, not a page of pypdf's repair notes on stderr."""
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    out = io.BytesIO()
    writer.write(out)
    data = out.getvalue()
    path = tmp_path / "broken.pdf"
    path.write_bytes(data[: data.rindex(b"startxref")] + b"startxref\n5\n")  # wrong pointer, no %%EOF: pypdf repairs and logs
    with pytest.raises(DataError):
        read_file(path)
    assert capfd.readouterr().err == ""
    assert [r.getMessage() for r in caplog.records if r.name.startswith("pypdf")] == []  # what would reach stderr outside pytest
