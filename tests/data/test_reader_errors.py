"""A file that cannot be read gets a DataError naming the file and the line, row or byte offset."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nocodetune.data.readers import read_file
from nocodetune.errors import DataError, NotFoundError


def _error(path: Path, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as info:
        read_file(path, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_jsonl_invalid_line_is_named(tmp_path: Path) -> None:
    lines = [json.dumps({"text": f"row {i}"}) for i in range(6)] + ['{"text": "unterminated']
    err = _error(_bytes(tmp_path / "train.jsonl", "\n".join(lines).encode()))
    assert err.file == "train.jsonl" and err.row == 7
    assert "train.jsonl: line 7 is not valid JSON" in err.message


def test_jsonl_line_that_is_not_an_object(tmp_path: Path) -> None:
    err = _error(_bytes(tmp_path / "d.jsonl", b'{"a": 1}\n[1, 2]\n'))
    assert err.row == 2 and "line 2 is a JSON list" in err.message


def test_csv_row_with_wrong_field_count(tmp_path: Path) -> None:
    text = "a,b,c\n" + "".join(f"{i},{i},{i}\n" for i in range(10)) + "1,2,3,4,5\n"
    err = _error(_bytes(tmp_path / "table.csv", text.encode()))
    assert err.file == "table.csv" and err.row == 12
    assert "line 12 has 5 fields, header has 3" in err.message
    assert "double quotes" in (err.hint or "")


def test_binary_content_in_csv(tmp_path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00"
    err = _error(_bytes(tmp_path / "image.csv", png))
    assert "image.csv contains binary content at byte offset 8" in err.message


def test_control_bytes_in_utf8_text(tmp_path: Path) -> None:
    err = _error(_bytes(tmp_path / "d.csv", b"text\nok\nbad \x01 byte\n"))
    assert "binary content at byte offset 12" in err.message


def test_undecodable_bytes(tmp_path: Path) -> None:
    err = _error(_bytes(tmp_path / "mixed.csv", b"a,b\n1," + bytes(range(128, 256)) * 3 + b"\n"))
    assert "mixed.csv has undecodable bytes at byte offset 6" in err.message
    assert "UTF-8" in (err.hint or "")


@pytest.mark.parametrize("name", ["empty.csv", "empty.jsonl", "empty.parquet", "empty.xlsx", "empty.pdf", "empty.docx", "empty.txt"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    err = _error(_bytes(tmp_path / name, b""))
    assert err.message == f"{name} is empty" and err.file == name


def test_whitespace_only_file(tmp_path: Path) -> None:
    assert "contains only whitespace" in _error(_bytes(tmp_path / "blank.txt", b" \n\n \n")).message


def test_header_without_rows(tmp_path: Path) -> None:
    assert "head.csv has no data rows" in _error(_bytes(tmp_path / "head.csv", b"text,label\n")).message


def test_invalid_json_names_line_and_column(tmp_path: Path) -> None:
    err = _error(_bytes(tmp_path / "d.json", b'[\n  {"a": 1},\n  {"a": 2,,}\n]'))
    assert err.row == 3 and "not valid JSON at line 3 column 11" in err.message


def test_json_lines_saved_as_json_gets_a_hint(tmp_path: Path) -> None:
    err = _error(_bytes(tmp_path / "d.json", b'{"a": 1}\n{"a": 2}\n'))
    assert ".jsonl" in (err.hint or "")


def test_json_scalar_is_not_a_dataset(tmp_path: Path) -> None:
    assert "expected an array of records" in _error(_bytes(tmp_path / "d.json", b"42")).message


def test_json_array_with_a_non_object(tmp_path: Path) -> None:
    err = _error(_bytes(tmp_path / "d.json", b'[{"a": 1}, {"a": 2}, 3]'))
    assert "record 3 is not an object of column: value (found int)" in err.message and err.row == 3


@pytest.mark.parametrize(("name", "hint"), [("old.xls", ".xlsx"), ("README", "supported"), ("archive.zip", "extract")])
def test_unsupported_format(tmp_path: Path, name: str, hint: str) -> None:
    err = _error(_bytes(tmp_path / name, b"whatever"))
    assert "not a supported dataset format" in err.message and hint in (err.hint or "")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("d.parquet", "not a readable Parquet file"),
        ("d.xlsx", "not a readable .xlsx workbook"),
        ("d.pdf", "not a readable PDF"),
        ("d.docx", "not a readable .docx document"),
    ],
)
def test_corrupt_binary_formats(tmp_path: Path, name: str, message: str) -> None:
    err = _error(_bytes(tmp_path / name, b"this is plain text, not the format the extension says"))
    assert message in err.message and err.file == name


def test_pdf_without_text(tmp_path: Path) -> None:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    path = tmp_path / "scan.pdf"
    with open(path, "wb") as fh:
        writer.write(fh)
    err = _error(path)
    assert "scan.pdf has no extractable text (1 page)" in err.message and "OCR" in (err.hint or "")


def test_excel_value_outside_the_header(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["text", "label"])
    wb.active.append(["a", "b"])
    wb.active.append(["c", "d", "stray"])
    path = tmp_path / "book.xlsx"
    wb.save(path)
    err = _error(path)
    assert err.row == 3 and "row 3 has a value in column 3, but the header has 2 columns" in err.message


def test_display_name_replaces_the_temp_path(tmp_path: Path) -> None:
    err = _error(_bytes(tmp_path / "tmp123.csv", b"a\n\x00\n"), display="reviews.csv")
    assert err.file == "reviews.csv" and "tmp123" not in err.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="file not found"):
        read_file(tmp_path / "nope.csv")


def _bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
