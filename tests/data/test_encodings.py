"""Every common text encoding reads right, judged on the whole file, and the user can name it.

The class of bug: a file decodes without error in a wrong code page and is stored as
mojibake ("şeker ığdır" → "ţeker ýđdýr"), or decodes to nothing useful. A test here
fails if any of these encodings, written by the tools users have, reads as other text.
"""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from nocodetune.data.decode import decode_text
from nocodetune.data.readers import preview, read_file
from nocodetune.data.store import DatasetStore
from nocodetune.errors import DataError

# one sentence per language; each encoding below is tried with the first sentence it can hold
SAMPLES = [
    "Türkçe: şeker ığdır, İstanbul güzel bir şehir, çok teşekkürler",
    "Français : café crème, l'été à la plage, Noël à Paris, où est le garçon",
    "Deutsch: Grüße aus München, schöne Straße, Äpfel und Öl",
    "Español: ¿Qué tal? Mañana será un día español, niño",
    "Polski: Zażółć gęślą jaźń, łódź, świat",
    "Čeština: Příliš žluťoučký kůň úpěl ďábelské ódy",
    "Magyar: Árvíztűrő tükörfúrógép, öt szép szűz",
    "Lietuvių: Ąžuolas ėjo į šilą, ūkis, čia",
    "Íslenska: Þetta er íslenska, ég ætla að fá mér",
    "Русский: Привет, как дела? Это тестовая строка, съешь ещё",
    "Українська: Привіт, як справи? Ґанок і їжак, пісня",
    "Қазақ тілі әдемі, біз қазақпыз",
    "Ελληνικά: Καλημέρα κόσμε, τι κάνεις; ευχαριστώ",
    "עברית: שלום עולם, זה טקסט בעברית",
    "العربية: مرحبا بالعالم، هذا نص عربي",
    "ภาษาไทย สวัสดีชาวโลก นี่คือข้อความ",
    "日本語: こんにちは世界、日本語のテキストです。東京大学",
    "中文：你好世界，这是中文文本。我们的国家",
    "中文：你好世界，這是中文文本。我們的國家",
    "한국어: 안녕하세요 세계, 한국어 텍스트입니다",
    "Tiê\u0301ng Viê\u0323t co\u0301 dâ\u0301u",
    "Eesti: Jää äär, õun ja šokolaad",
    "Latviešu: Ģimene ķēpa, ļoti āzis",
    "Română: Știință, țară, înăuntru, mâine",
    "Malti: Ħabib ġdid, żiemel ċar",
    "Esperanto: ĉiuĵaŭde ŝanĝiĝas, eĥo",
]


def _csv_text(sentence: str, rows: int = 5) -> str:
    return "text,label\n" + "".join(f'"{sentence} {i}",{i}\n' for i in range(rows))


def _all_encodings() -> list[str]:
    from charset_normalizer.constant import IANA_SUPPORTED

    return sorted(set(IANA_SUPPORTED) - {"ascii", "utf_8"})


def _sample_for(encoding: str) -> str | None:
    for sentence in SAMPLES:
        text = _csv_text(sentence)
        try:
            data = text.encode(encoding)
        except UnicodeEncodeError:
            continue
        if data != text.encode("utf-8"):
            return text
    return None


# Honest exceptions. 7-bit encodings are valid ASCII, so they read as ASCII text unless named.
# JIS X 0213 holds Latin letters as two-byte codes no real file uses; the right reading is offered.
SEVEN_BIT = {"hz", "utf_7"}
OFFERED_ONLY = {"shift_jis_2004", "shift_jisx0213"}


@pytest.mark.parametrize("encoding", _all_encodings())
def test_every_encoding_charset_normalizer_knows_reads_right(encoding: str) -> None:
    text = _sample_for(encoding)
    if text is None:
        pytest.skip(f"no sample sentence can be written in {encoding}")
    data = text.encode(encoding)
    if encoding in SEVEN_BIT:
        assert decode_text(data, "x.csv").encoding == "utf-8"
        assert decode_text(data, "x.csv", encoding=encoding).text == text
        return
    decoded = decode_text(data, "x.csv")
    if encoding in OFFERED_ONLY:
        assert decoded.text == text or any(data.decode(a.encoding) == text for a in decoded.alternatives)
        return
    assert decoded.text == text, f"{encoding} read as {decoded.encoding}: {decoded.text.splitlines()[1]!r}"


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-32-le", codecs.BOM_UTF32_LE),
        ("utf-16-le", b""),  # no BOM: the NUL bytes give it away
        ("utf-16-be", b""),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf32-bom", "utf16le", "utf16be"],
)
@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "txt"])
def test_unicode_files_read_every_value(tmp_path: Path, encoding: str, bom: bytes, fmt: str) -> None:
    """The issue's first bug: a UTF-16 CSV with a BOM whose values all became null."""
    values = ["şeker ığdır", "こんにちは", "naïve café"]
    text = {
        "csv": "text,label\n" + "".join(f"{v},{i}\n" for i, v in enumerate(values)),
        "tsv": "text\tlabel\n" + "".join(f"{v}\t{i}\n" for i, v in enumerate(values)),
        "jsonl": "".join(f'{{"text": "{v}", "label": "{i}"}}\n' for i, v in enumerate(values)),
        "json": "[" + ",".join(f'{{"text": "{v}", "label": "{i}"}}' for i, v in enumerate(values)) + "]",
        "txt": "\n\n".join(values),
    }[fmt]
    path = tmp_path / f"data.{fmt}"
    path.write_bytes(bom + text.encode(encoding))
    table = read_file(path)
    assert [row["text"] for row in table.rows] == values
    if fmt != "txt":
        assert [row["label"] for row in table.rows] == ["0", "1", "2"] if fmt in ("csv", "tsv") else [str(i) for i in range(3)]
    again = preview(path, 0, 3, encoding=table.encoding).rows  # the store previews with the encoding it recorded
    assert [row["text"] for row in again] == values


def test_turkish_is_not_read_as_central_european(tmp_path: Path) -> None:
    """The issue's second bug, for both Turkish code pages."""
    for encoding in ("cp1254", "iso-8859-9"):
        path = tmp_path / "tr.csv"
        path.write_bytes("text,label\nşeker ığdır,1\nİstanbul güzel,2\nçok teşekkürler,3\n".encode(encoding))
        table = read_file(path)
        assert [r["text"] for r in table.rows] == ["şeker ığdır", "İstanbul güzel", "çok teşekkürler"]
        assert table.encoding in ("cp1254", "iso8859-9") and table.encoding_source == "detected"


def test_the_whole_file_is_evidence_not_a_prefix(tmp_path: Path) -> None:
    """Two megabytes of ASCII, then the only Turkish letters: the end of the file decides."""
    ascii_rows = "".join(f"plain row {i},x\n" for i in range(150_000))
    path = tmp_path / "late.csv"
    path.write_bytes(("text,label\n" + ascii_rows + "şeker ığdır,1\nİstanbul güzel,2\n").encode("cp1254"))
    table = read_file(path)
    assert table.rows[-2:] == [{"text": "şeker ığdır", "label": "1"}, {"text": "İstanbul güzel", "label": "2"}]


def test_a_close_call_names_the_alternative_and_the_user_can_choose_it(tmp_path: Path, store: DatasetStore) -> None:
    """'café crème' is French in cp1252 and (improbably) 'café crčme' in cp1250: say so, and let the user pick."""
    path = tmp_path / "menu.csv"
    path.write_bytes("text\ncafé crème\n".encode("cp1252"))
    meta = store.add(path, "menu").meta
    assert (meta.encoding, meta.encoding_source, meta.encoding_alternatives) == ("cp1252", "detected", ["cp1250"])
    assert any("also plausible: cp1250 ('crème' would read 'crčme')" in note for note in meta.notes)
    assert store.preview("menu", 1).rows == [{"text": "café crème"}]

    path.write_bytes("text\ncafé crème\n".encode("cp1252") + b"\n")  # new bytes, so a new version
    chosen = store.add(path, "menu", encoding="cp1250").meta
    assert (chosen.encoding, chosen.encoding_source, chosen.encoding_alternatives) == ("cp1250", "given", [])
    assert store.preview("menu", chosen.version).rows == [{"text": "café crčme"}]


def test_every_later_reader_uses_the_encoding_the_version_recorded(tmp_path: Path, store: DatasetStore) -> None:
    """Validate and training read a job's snapshot: a user's choice must survive there, not be detected again."""
    from nocodetune.data.examples import read_examples
    from nocodetune.data.readers import read_snapshot
    from nocodetune.records.schema import DatasetSection

    path = tmp_path / "menu.csv"
    path.write_bytes("text\ncafé crème\n".encode("cp1252"))
    meta = store.add(path, "menu", encoding="cp1250").meta
    snapshot = store.snapshot_into("menu", meta.version, tmp_path / "job" / "files")
    for rows in (store.read("menu", meta.version).rows, read_snapshot(store.path("menu", meta.version)).rows, read_snapshot(snapshot).rows):
        assert rows == [{"text": "café crčme"}]
    assert read_examples(snapshot, DatasetSection()).examples == [{"text": "café crčme"}]


def test_a_given_encoding_that_does_not_fit_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes(b"text\nfine\n" + "şeker".encode("cp1254") + b"\n")
    with pytest.raises(DataError) as info:
        read_file(path, encoding="utf-8")
    err = info.value
    assert err.field == "encoding" and err.row == 3 and "cannot be read as utf-8: byte 0xfe at byte offset 10 (line 3)" in err.message
    with pytest.raises(DataError, match="unknown text encoding 'klingon'") as unknown:
        read_file(path, encoding="klingon")
    assert unknown.value.field == "encoding"
    with pytest.raises(DataError, match="unknown text encoding 'base64'"):  # a codec, but not a text encoding
        read_file(path, encoding="base64")


def test_encoding_is_refused_for_binary_formats(tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["text"])
    wb.active.append(["a"])
    wb.save(tmp_path / "b.xlsx")
    with pytest.raises(DataError, match="an encoding applies to text files only") as info:
        read_file(tmp_path / "b.xlsx", encoding="cp1252")
    assert info.value.field == "encoding"


def test_utf8_with_a_stray_legacy_byte_is_refused_at_its_line(tmp_path: Path) -> None:
    """Mostly UTF-8 with one cp1252 line pasted in: any single encoding would garble one part, so say where."""
    path = tmp_path / "mixed.csv"
    path.write_bytes("text\ncafé\nnaïve\nrésumé\n".encode() + "crème\n".encode("cp1252"))
    with pytest.raises(DataError) as info:
        read_file(path)
    assert info.value.row == 5 and "mixed.csv is UTF-8 except for byte 0xe8 at byte offset 29 (line 5)" in info.value.message


def test_excel_and_other_exports(tmp_path: Path) -> None:
    """Files as other tools write them."""
    rows = [("Grüße aus München", "positive"), ("“smart quotes” – and a dash", "neutral"), ("naïve café", "negative")]
    excel = "text;label\r\n" + "".join(f"{t};{label}\r\n" for t, label in rows)  # Excel 'CSV' on a German Windows
    (tmp_path / "excel.csv").write_bytes(excel.encode("cp1252"))
    sheets = "text,label\r\n" + "".join(f"{t},{label}\r\n" for t, label in rows)  # Google Sheets: UTF-8, CRLF
    (tmp_path / "sheets.csv").write_bytes(sheets.encode("utf-8"))
    libre = "text,label\n" + "".join(f'"{t}","{label}"\n' for t, label in rows)  # LibreOffice: every field quoted
    (tmp_path / "libre.csv").write_bytes(libre.encode("utf-8"))
    unicode_txt = "text\tlabel\r\n" + "".join(f"{t}\t{label}\r\n" for t, label in rows)  # Excel 'Unicode Text'
    (tmp_path / "unicode.tsv").write_bytes(codecs.BOM_UTF16_LE + unicode_txt.encode("utf-16-le"))
    for name in ("excel.csv", "sheets.csv", "libre.csv", "unicode.tsv"):
        table = read_file(tmp_path / name)
        assert [(r["text"], r["label"]) for r in table.rows] == rows, name
