"""Hostile and awkward inputs for `data add` and `POST /api/files`, generated, not committed.

Each file case says what a correct NoCodeTune does with it: load it (with how many rows
and, where it matters, the first value read back), or refuse it with a message that
names the file and the row, line or column (`needle`). Each name case is a dataset name
or an upload file name with the same two outcomes. The files cover what users bring
from other tools, what breaks parsers (encodings, nesting, numbers JSON does not have,
duplicate names), and what is not the format its extension says.
"""

from __future__ import annotations

import codecs
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class FileCase:
    id: str
    filename: str
    make: Callable[[], bytes]
    rows: int | None = None  # loads with this many rows; None: refused
    needle: str = ""  # refused: a part of the message naming the row / line / column / reason
    first: dict[str, object] | None = None  # loads: the first row as a preview shows it

    @property
    def loads(self) -> bool:
        return self.rows is not None


# -- builders -----------------------------------------------------------------------------
def _csv(rows: list[tuple[str, str]], header: str = "text,label", sep: str = ",", nl: str = "\n") -> str:
    return header.replace(",", sep) + nl + "".join(f"{a}{sep}{b}{nl}" for a, b in rows)


def _xlsx(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    for row in rows:
        wb.active.append(row)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _parquet(table_factory: Callable[[], object]) -> bytes:
    import pyarrow.parquet as pq

    out = io.BytesIO()
    pq.write_table(table_factory(), out)
    return out.getvalue()


def _docx(paragraphs: list[str]) -> bytes:
    import docx

    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _pdf(encrypt: bool = False) -> bytes:
    from pypdf import PdfWriter

    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    if encrypt:
        writer.encrypt("secret")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _rezip(data: bytes, member: str, content: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, content if info.filename == member else source.read(info))
    return out.getvalue()


def _zip(name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(name, content)
    return out.getvalue()


def _jsonl(rows: list[object]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")


def _pa_table(**columns: object) -> Callable[[], object]:
    def make() -> object:
        import pyarrow as pa

        return pa.table(columns)

    return make


def _pa_dup() -> object:
    import pyarrow as pa

    return pa.table([pa.array(["a"]), pa.array(["b"])], names=["text", "text"])


def _pa_binary() -> object:
    import pyarrow as pa

    return pa.table({"text": pa.array([b"fine", b"\xff\xfe\x00 not text"], type=pa.binary())})


TURKISH = [("şeker ığdır", "1"), ("İstanbul güzel bir şehir", "2"), ("çok teşekkürler", "3")]
CHAT = {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}
DEEP = "[" * 100_000 + "]" * 100_000

FILES: list[FileCase] = [
    # -- what users bring, which must load and read right -------------------------------
    FileCase("utf8", "plain.csv", lambda: _csv([("hello", "1"), ("wörld", "2")]).encode(), 2, first={"text": "hello", "label": "1"}),
    FileCase("utf8-bom", "bom.csv", lambda: codecs.BOM_UTF8 + _csv([("hello", "1")]).encode(), 1, first={"text": "hello", "label": "1"}),
    FileCase("utf16le-bom", "u16.csv", lambda: _csv(TURKISH).encode("utf-16"), 3, first={"text": "şeker ığdır", "label": "1"}),
    FileCase("utf16be-bom", "u16be.csv", lambda: codecs.BOM_UTF16_BE + _csv(TURKISH).encode("utf-16-be"), 3, first={"text": "şeker ığdır", "label": "1"}),
    FileCase("utf16le-nobom", "u16.tsv", lambda: _csv(TURKISH, sep="\t").encode("utf-16-le"), 3, first={"text": "şeker ığdır", "label": "1"}),
    FileCase("excel-cp1252", "excel.csv", lambda: _csv([("Grüße, “quoted”", "a"), ("naïve café – ok", "b")], sep=";", nl="\r\n").encode("cp1252"), 2,
             first={"text": "Grüße, “quoted”", "label": "a"}),
    FileCase("turkish-cp1254", "tr.csv", lambda: _csv(TURKISH).encode("cp1254"), 3, first={"text": "şeker ığdır", "label": "1"}),
    FileCase("turkish-iso8859-9", "tr9.csv", lambda: _csv(TURKISH).encode("iso-8859-9"), 3, first={"text": "şeker ığdır", "label": "1"}),
    FileCase("shift-jis", "ja.csv", lambda: _csv([("こんにちは世界", "1"), ("日本語のテキストです。", "2")]).encode("shift_jis"), 2, first={"text": "こんにちは世界", "label": "1"}),
    FileCase("gb18030", "zh.csv", lambda: _csv([("你好世界，这是中文文本。", "1")]).encode("gb18030"), 1, first={"text": "你好世界，这是中文文本。", "label": "1"}),
    FileCase("koi8-r", "ru.txt", lambda: "Привет, как дела?\n\nЭто тестовая строка.".encode("koi8_r"), 2, first={"text": "Привет, как дела?"}),
    FileCase("escaped-nul", "nul.jsonl", lambda: _jsonl([{"text": "a\u0000b"}, {"text": "ok"}]), 2, first={"text": "a\u0000b"}),
    FileCase("multiline-crlf", "multi.csv", lambda: b'text,label\r\n"line one\r\nline two, with comma",x\r\n', 1, first={"text": "line one\r\nline two, with comma", "label": "x"}),
    FileCase("classic-mac", "mac.csv", lambda: b"text,label\rhello,1\rworld,2\r", 2, first={"text": "hello", "label": "1"}),
    FileCase("formula-injection", "formula.csv", lambda: b"text,label\n\"=cmd|' /C calc'!A0\",@SUM(1)\n", 1, first={"text": "=cmd|' /C calc'!A0", "label": "@SUM(1)"}),
    FileCase("huge-field", "huge.csv", lambda: b"text,label\n" + b"x" * 3_000_000 + b",1\n", 1),
    FileCase("wide", "wide.csv", lambda: (",".join(f"c{i}" for i in range(2000)) + "\n" + ",".join("v" for _ in range(2000)) + "\n").encode(), 1),
    FileCase("sharegpt", "sharegpt.json", lambda: json.dumps([{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]).encode(), 1),
    FileCase("openai-chat", "chat.jsonl", lambda: _jsonl([CHAT, CHAT]), 2),
    FileCase("pandas-records", "pandas.json", lambda: b'[{"prompt":"a","completion":"b"},{"prompt":"c","completion":null}]', 2, first={"prompt": "a", "completion": "b"}),
    FileCase("html-deep", "deep.html", lambda: b"<div>" * 5_000 + b"<p>deep text</p>" + b"</div>" * 5_000, 1, first={"text": "deep text"}),
    FileCase("html-unclosed", "unclosed.html", lambda: b"<p>x" * 20_000 + b"<p>last", 1, first={"text": "last"}),  # was quadratic: a minute per read
    FileCase("xlsx", "book.xlsx", lambda: _xlsx([["text", "n", "sum"], ["a", 1, "=B2*2"], ["b", 2, None]]), 2, first={"text": "a", "n": 1, "sum": None}),
    FileCase("parquet", "ok.parquet", lambda: _parquet(_pa_table(text=["a", "b"], n=[1, 2])), 2, first={"text": "a", "n": 1}),
    FileCase("docx", "memo.docx", lambda: _docx(["First paragraph.", "Second paragraph."]), 2, first={"text": "First paragraph."}),
    FileCase("markdown", "notes.md", lambda: b"# Title\n\nBody text.\n\n```\ncode\n\nmore code\n```\n", 2, first={"text": "# Title\n\nBody text."}),
    FileCase("emoji-zwj", "emoji.txt", lambda: "family 👨‍👩‍👧 and flags 🇹🇷".encode(), 1, first={"text": "family 👨‍👩‍👧 and flags 🇹🇷"}),
    # -- silently wrong before: refused, naming the row and column -----------------------
    FileCase("nan", "nan.json", lambda: b'[{"text": "a", "score": 1}, {"text": "b", "score": NaN}]', needle="record 2, column 'score' holds NaN"),
    FileCase("infinity", "inf.jsonl", lambda: b'{"text": "a", "w": 1}\n{"text": "b", "w": -Infinity}\n', needle="line 2, column 'w' holds -Infinity"),
    FileCase("out-of-range", "big.json", lambda: b'[{"text": "a", "w": 1e999}]', needle="record 1, column 'w' holds 1e999"),
    FileCase("long-int", "long.jsonl", lambda: b'{"id": ' + b"7" * 6000 + b"}\n", needle="line 1, column 'id' holds a 6000-digit number"),
    FileCase("dup-header", "dup.csv", lambda: b"text,label,text\na,b,c\n", needle="columns 1 and 3 are both named 'text'"),
    FileCase("dup-key", "dupkey.jsonl", lambda: b'{"text": "a"}\n{"text": "b", "text": "c"}\n', needle="line 2 names the key 'text' twice"),
    FileCase("dup-xlsx", "dup.xlsx", lambda: _xlsx([["prompt", "prompt"], ["a", "b"]]), needle="columns 1 and 2 are both named 'prompt'"),
    FileCase("dup-parquet", "dup.parquet", lambda: _parquet(_pa_dup), needle="columns 1 and 2 are both named 'text'"),
    FileCase("lone-surrogate", "sur.jsonl", lambda: b'{"text": "ok"}\n{"text": "bad \\udc00"}\n', needle="line 2, column 'text' holds a lone surrogate"),
    FileCase("binary-cell", "bin.parquet", lambda: _parquet(_pa_binary), needle="row 2, column 'text' holds binary data"),
    FileCase("mixed-encoding", "mixed.csv", lambda: "text\ncafé\nnaïve\nrésumé\n".encode() + "crème\n".encode("cp1252"), needle="line 5"),
    # -- crashes before: deep inside json, openpyxl, python-docx ----------------------------
    FileCase("deep-json", "deep.json", lambda: f'[{{"a": {DEEP}}}]'.encode(), needle="nested more than 100 levels deep at line 1"),
    FileCase("deep-jsonl", "deep.jsonl", lambda: b'{"a": 1}\n' + f'{{"a": {DEEP}}}\n'.encode(), needle="nested more than 100 levels deep at line 2"),
    FileCase("xlsx-bad-xml", "badxml.xlsx", lambda: _rezip(_xlsx([["text"], ["a"]]), "xl/worksheets/sheet1.xml", b"<worksheet><sheetData><row>"), needle="not a readable .xlsx workbook"),
    FileCase("xlsx-bad-workbook", "badbook.xlsx", lambda: _rezip(_xlsx([["text"], ["a"]]), "xl/workbook.xml", b"<<< not xml"), needle="not a readable .xlsx workbook"),
    FileCase("docx-bad-xml", "bad.docx", lambda: _rezip(_docx(["x"]), "word/document.xml", b"<w:document><<<"), needle="not a readable .docx document"),
    FileCase("docx-empty-body", "empty-body.docx", lambda: _rezip(_docx(["x"]), "word/document.xml", b""), needle="not a readable .docx document"),
    # -- not what the extension says ------------------------------------------------------
    FileCase("png-as-csv", "image.csv", lambda: b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), needle="binary content at byte offset 8"),
    FileCase("zip-as-csv", "archive.csv", lambda: _zip("data.csv", b"text\nhello\n"), needle="binary content"),
    FileCase("zip-as-xlsx", "notbook.xlsx", lambda: _zip("hello.txt", b"hi"), needle="not a readable .xlsx workbook"),
    FileCase("truncated-xlsx", "cut.xlsx", lambda: _xlsx([["text"], ["a"]])[:-300], needle="not a readable .xlsx workbook"),
    FileCase("text-as-parquet", "text.parquet", lambda: b"text,label\na,b\n", needle="not a readable Parquet file"),
    FileCase("truncated-parquet", "cut.parquet", lambda: _parquet(_pa_table(text=["a"] * 100))[:-40], needle="not a readable Parquet file"),
    FileCase("text-as-pdf", "doc.pdf", lambda: b"just text, not a PDF", needle="not a readable PDF"),
    FileCase("encrypted-pdf", "locked.pdf", lambda: _pdf(encrypt=True), needle="is an encrypted PDF"),
    FileCase("blank-pdf", "scan.pdf", lambda: _pdf(), needle="has no extractable text (1 page)"),
    FileCase("random-bytes", "noise.csv", lambda: b"a,b\n1," + bytes(range(128, 256)) * 4 + b"\n", needle="undecodable bytes at byte offset 6 (line 2)"),
    FileCase("raw-nul", "nul.csv", lambda: b"text\nok\nbad\x00value\n", needle="binary content at byte offset 11 (line 3)"),
    FileCase("control-chars", "ctl.txt", lambda: b"hello\x01\x02 world\n", needle="binary content at byte offset 5 (line 1)"),
    # -- empty or shapeless -----------------------------------------------------------------
    FileCase("empty", "empty.csv", lambda: b"", needle="empty.csv is empty"),
    FileCase("whitespace", "blank.txt", lambda: b" \n\t\n \n", needle="contains only whitespace"),
    FileCase("header-only", "head.csv", lambda: b"text,label\n", needle="head.csv has no data rows"),
    FileCase("sniffer-bomb", "quotes.csv", lambda: b"text,label\n" + b'" ,' * 20_000 + b"\n", needle="row at line 2 has 10001 fields, header has 2"),  # csv.Sniffer: a minute
    FileCase("ragged", "ragged.csv", lambda: b"a,b,c\n1,2,3\n4,5\n", needle="row at line 3 has 2 fields, header has 3"),
    FileCase("json-scalar", "scalar.json", lambda: b"42", needle="expected an array of records"),
    FileCase("json-empty-array", "none.json", lambda: b"[]", needle="none.json has no data rows"),
    FileCase("jsonl-array-line", "arr.jsonl", lambda: b'{"a": 1}\n[1, 2]\n', needle="line 2 is a JSON list"),
    FileCase("invalid-json", "broken.json", lambda: b'[{"a": 1},\n {"a": 2,,}]', needle="not valid JSON at line 2"),
    FileCase("script-only-html", "script.html", lambda: b"<html><script>alert(1)</script><style>p{}</style></html>", needle="script.html has no text"),
]


@dataclass(frozen=True)
class NameCase:
    id: str
    value: str
    loads: bool | None  # True: accepted; False: refused; None: either, as long as it is clean
    field: str = ""  # refused: the field the error names
    on_disk: bool = True  # upload file names: whether the CLI can test it (a file can have this name)


DATASET_NAMES: list[NameCase] = [
    NameCase("traversal", "../escape", False, "dataset name"),
    NameCase("absolute", "/etc/passwd", False, "dataset name"),
    NameCase("subfolder", "a/b", False, "dataset name"),
    NameCase("dotdot", "..", False, "dataset name"),
    NameCase("dot", ".", False, "dataset name"),
    NameCase("empty", "", False, "dataset name"),
    NameCase("spaces", " reviews ", False, "dataset name"),
    NameCase("newline", "a\nb", False, "dataset name"),
    NameCase("nul", "a\x00b", False, "dataset name"),
    NameCase("too-long", "x" * 101, False, "dataset name"),
    NameCase("longest", "x" * 100, True),
    NameCase("unicode", "café", False, "dataset name"),
    NameCase("homoglyph", "r\u0435views", False, "dataset name"),  # Cyrillic е
    NameCase("rtl-override", "\u202eevil", False, "dataset name"),
    NameCase("hidden", ".hidden", False, "dataset name"),
    NameCase("option-like", "-rf", False, "dataset name"),
    NameCase("shell", "a;rm -rf ~", False, "dataset name"),
    NameCase("percent-encoded", "%2e%2e", False, "dataset name"),
    NameCase("version-like", "reviews@2", False, "dataset name"),
    NameCase("emoji", "📊data", False, "dataset name"),
    NameCase("windows-reserved", "con", None),
    NameCase("ordinary", "reviews-2024_v1.final", True),
]

UPLOAD_NAMES: list[NameCase] = [
    NameCase("traversal", "../../etc/passwd.csv", False, "filename", on_disk=False),
    NameCase("absolute", "/tmp/data.csv", False, "filename", on_disk=False),
    NameCase("backslash", "..\\..\\data.csv", False, "filename"),
    NameCase("nul", "data.csv\x00.exe", False, "filename", on_disk=False),
    NameCase("dotdot", "..", False, "filename", on_disk=False),
    NameCase("empty", "", False, "filename", on_disk=False),
    NameCase("too-long", "x" * 300 + ".csv", False, "filename", on_disk=False),
    NameCase("newline", "line\nbreak.csv", False, "filename"),
    NameCase("rtl-override", "report\u202ecod.csv", False, "filename"),
    NameCase("double-extension", "data.csv.exe", False, "file"),
    NameCase("no-stem", ".csv", False, "file"),
    NameCase("meta-json", "meta.json", True),  # must not overwrite the version's own meta.json
    NameCase("reserved-stem", "con.csv", True),
    NameCase("uppercase", "REPORT.CSV", True),
    NameCase("unicode", "données ☃.csv", True),
    NameCase("punctuation", "a:b?*<>|.csv", True),
    NameCase("spaces", "  spaced  .csv", True),
    NameCase("emoji-zwj", "👨‍👩‍👧 family.csv", True),
]

ENCODING_NAMES: list[NameCase] = [
    NameCase("unknown", "klingon", False, "encoding"),
    NameCase("path-like", "../../etc/passwd", False, "encoding"),
    NameCase("not-text", "base64", False, "encoding"),
    NameCase("nul", "utf-8\x00", False, "encoding"),
    NameCase("right", "cp1254", True),
]
