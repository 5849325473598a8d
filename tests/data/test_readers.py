"""Every reader turns its format into the rows and columns a user would expect."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from nocodetune.data.readers import count_rows, preview, read_file
from nocodetune.errors import DataError


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def make_pdf(path: Path, pages: list[str]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with plt.rc_context({"pdf.fonttype": 42}), PdfPages(path) as pdf:
        for text in pages:
            fig = plt.figure()
            fig.text(0.1, 0.5, text)
            pdf.savefig(fig)
            plt.close(fig)
    return path


# -- CSV / TSV -------------------------------------------------------------------------
def test_csv_with_quoted_delimiter_and_multiline_field(tmp_path: Path) -> None:
    path = _write(tmp_path / "r.csv", 'prompt,completion\n"Hi, there","line one\nline two"\n\nplain,text\n')
    table = read_file(path)
    assert table.format == "csv"
    assert table.columns == ["prompt", "completion"]
    assert table.rows == [{"prompt": "Hi, there", "completion": "line one\nline two"}, {"prompt": "plain", "completion": "text"}]


def test_csv_semicolon_delimiter_is_sniffed(tmp_path: Path) -> None:
    path = _write(tmp_path / "eu.csv", "name;price\nbread;1,20\nmilk;0,99\n")
    table = read_file(path)
    assert table.rows == [{"name": "bread", "price": "1,20"}, {"name": "milk", "price": "0,99"}]
    assert any(";" in note for note in table.notes)


def test_tsv(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.tsv", "question\tanswer\nwhat, now?\tyes, now\n")
    assert read_file(path).rows == [{"question": "what, now?", "answer": "yes, now"}]


def test_csv_utf8_bom_is_not_part_of_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbftext,label\nhello,1\n")
    table = read_file(path)
    assert table.columns == ["text", "label"]
    assert table.encoding == "utf-8-sig"


def test_csv_utf16_with_bom(tmp_path: Path) -> None:
    path = _write(tmp_path / "excel.csv", "text,label\nÜber,1\n", encoding="utf-16")
    assert read_file(path).rows == [{"text": "Über", "label": "1"}]


def test_csv_latin1_is_detected(tmp_path: Path) -> None:
    path = _write(tmp_path / "old.csv", "name,city\nJosé,Zürich\nFrançois,Besançon\n", encoding="latin-1")
    table = read_file(path)
    assert table.rows[0] == {"name": "José", "city": "Zürich"}
    assert table.encoding not in ("utf-8", None)


def test_csv_empty_header_is_named_and_noted(tmp_path: Path) -> None:
    path = _write(tmp_path / "h.csv", "text,,label\na,b,c\n")
    table = read_file(path)
    assert table.columns == ["text", "column_2", "label"]
    assert table.rows == [{"text": "a", "column_2": "b", "label": "c"}]
    assert table.notes == ["header of column 2 is empty; named it 'column_2'"]


# -- JSON / JSONL ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "document",
    [
        [{"q": "a", "a": "b"}, {"q": "c", "a": "d"}],
        {"data": [{"q": "a", "a": "b"}, {"q": "c", "a": "d"}]},
        {"train": [{"q": "a", "a": "b"}, {"q": "c", "a": "d"}], "version": 2},
        {"q": ["a", "c"], "a": ["b", "d"]},
    ],
    ids=["array", "data-key", "train-key", "columnar"],
)
def test_json_shapes(tmp_path: Path, document: object) -> None:
    path = _write(tmp_path / "d.json", json.dumps(document))
    table = read_file(path)
    assert table.columns == ["q", "a"]
    assert table.rows == [{"q": "a", "a": "b"}, {"q": "c", "a": "d"}]


def test_json_object_of_records_keeps_the_key(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.json", json.dumps({"r1": {"text": "x"}, "r2": {"text": "y"}}))
    assert read_file(path).rows == [{"id": "r1", "text": "x"}, {"id": "r2", "text": "y"}]


def test_json_array_of_strings_becomes_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.json", json.dumps(["one", "two"]))
    assert read_file(path).rows == [{"text": "one"}, {"text": "two"}]


def test_jsonl_fills_missing_columns_and_keeps_nested_values(tmp_path: Path) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    lines = [json.dumps({"messages": messages}), "", json.dumps({"messages": messages, "source": "web"})]
    table = read_file(_write(tmp_path / "chat.jsonl", "\n".join(lines) + "\n"))
    assert table.columns == ["messages", "source"]
    assert table.rows[0] == {"messages": messages, "source": None}
    assert table.rows[1]["source"] == "web"


# -- Parquet / Excel ------------------------------------------------------------------
def test_parquet_with_list_column(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"text": ["a", "b", "c"], "score": [1.5, None, 3.0], "tags": [["x"], [], ["y", "z"]]}), path)
    table = read_file(path)
    assert table.format == "parquet"
    assert table.columns == ["text", "score", "tags"]
    assert table.rows[1] == {"text": "b", "score": None, "tags": []}
    assert count_rows(path) == 3
    assert preview(path, offset=2, limit=5).rows == [{"text": "c", "score": 3.0, "tags": ["y", "z"]}]


def test_excel_first_sheet_with_dates_and_numbers(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    sheet = wb.active
    sheet.title = "Reviews"
    sheet.append(["review", "stars", "date"])
    sheet.append(["good", 5, dt.datetime(2024, 3, 5, 10, 0)])
    sheet.append([None, None, None])  # blank row is skipped
    sheet.append(["bad", 1, None])
    wb.create_sheet("Other").append(["ignored"])
    path = tmp_path / "book.xlsx"
    wb.save(path)
    table = read_file(path)
    assert table.format == "excel"
    assert table.columns == ["review", "stars", "date"]
    assert table.rows == [{"review": "good", "stars": 5, "date": "2024-03-05T10:00:00"}, {"review": "bad", "stars": 1, "date": None}]
    assert "read sheet 'Reviews'" in table.notes
    json.dumps(table.rows)  # every value is JSON-safe


# -- documents ------------------------------------------------------------------------
def test_txt_paragraphs_and_whole_document(tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.txt", "First paragraph\nstill first.\n\n\nSecond one.\r\n\r\nThird.\n")
    assert read_file(path).rows == [{"text": "First paragraph\nstill first."}, {"text": "Second one."}, {"text": "Third."}]
    whole = read_file(path, split="document")
    assert len(whole.rows) == 1 and whole.text_split == "document"
    assert whole.rows[0]["text"].startswith("First paragraph") and whole.rows[0]["text"].endswith("Third.")


def test_markdown_keeps_code_fences_and_headings_with_their_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "doc.md", "# Install\n\nRun this:\n\n```\npip install x\n\npython -m x\n```\n\nDone.\n")
    texts = [row["text"] for row in read_file(path).rows]
    assert texts == ["# Install\n\nRun this:", "```\npip install x\n\npython -m x\n```", "Done."]


def test_html_block_text_without_scripts(tmp_path: Path) -> None:
    html = "<html><head><title>T</title><script>var x=1;</script></head><body><h1>Title</h1><p>One <b>bold</b> word</p><ul><li><p>item</p></li></ul></body></html>"
    table = read_file(_write(tmp_path / "page.html", html))
    assert [row["text"] for row in table.rows] == ["Title", "One bold word", "item"]
    assert "var x" not in json.dumps(table.rows)


def test_pdf_one_row_per_page(tmp_path: Path) -> None:
    path = make_pdf(tmp_path / "paper.pdf", ["First page about cats.", "Second page about dogs."])
    table = read_file(path)
    assert table.format == "pdf"
    assert [row["text"] for row in table.rows] == ["First page about cats.", "Second page about dogs."]
    assert len(read_file(path, split="document").rows) == 1


def test_docx_paragraphs_and_tables(tmp_path: Path) -> None:
    import docx

    document = docx.Document()
    document.add_paragraph("Opening paragraph.")
    document.add_paragraph("")
    document.add_paragraph("Closing paragraph.")
    cells = document.add_table(rows=1, cols=2).rows[0].cells
    cells[0].text, cells[1].text = "left", "right"
    path = tmp_path / "memo.docx"
    document.save(str(path))
    table = read_file(path)
    assert [row["text"] for row in table.rows] == ["Opening paragraph.", "Closing paragraph.", "left | right"]


# -- preview and count ----------------------------------------------------------------
def test_preview_reads_only_what_it_shows(tmp_path: Path) -> None:
    lines = [json.dumps({"n": i}) for i in range(50)] + ["{broken"]
    path = _write(tmp_path / "big.jsonl", "\n".join(lines) + "\n")
    page = preview(path, offset=10, limit=3)
    assert page.rows == [{"n": 10}, {"n": 11}, {"n": 12}]
    assert page.columns == ["n"]


def test_csv_preview_and_count(tmp_path: Path) -> None:
    path = _write(tmp_path / "n.csv", "n\n" + "".join(f"{i}\n" for i in range(25)))
    assert count_rows(path) == 25
    assert preview(path, offset=20, limit=10).rows == [{"n": str(i)} for i in range(20, 25)]
    assert preview(path, offset=30, limit=10).rows == []


def test_latin1_after_a_long_ascii_start(tmp_path: Path) -> None:
    """Encoding detection looks at the whole file; a file that turns non-UTF-8 after a megabyte still reads."""
    ascii_rows = "".join(f"row {i},plain\n" for i in range((1 << 20) // 10))
    path = _write(tmp_path / "long.csv", "name,kind\n" + ascii_rows + "José,accent\n", encoding="latin-1")
    table = read_file(path)
    assert table.rows[-1] == {"name": "José", "kind": "accent"}
    assert preview(path, offset=len(table.rows) - 1, limit=1, encoding=table.encoding).rows == [{"name": "José", "kind": "accent"}]


def test_classic_mac_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "mac.csv"
    path.write_bytes(b"a,b\r1,2\r3,4\r")
    assert read_file(path).rows == [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]


def test_counting_checks_every_row_without_keeping_them(tmp_path: Path) -> None:
    path = _write(tmp_path / "d.jsonl", "".join(json.dumps({"n": i}) + "\n" for i in range(100)))
    counted = read_file(path, keep_rows=False)
    assert (counted.num_rows, counted.rows, counted.columns) == (100, [], ["n"])
    path.write_text(path.read_text() + "oops\n")
    with pytest.raises(DataError, match="line 101"):
        read_file(path, keep_rows=False)
