"""Bytes → text for text-based dataset files (CSV, TSV, JSON, JSONL, TXT, MD, HTML).

Users bring files saved by Excel on Windows, by editors that add a BOM, or by accident
(a zip renamed .csv). Text is read as what its BOM says, as UTF-8 when the whole file is
UTF-8, as UTF-16/32 when NUL bytes show a BOM-less one, or else in the encoding that reads
the whole file best (`charset.detect`, which also names close alternatives). The user may
name the encoding instead, which skips detection. Binary content, bytes no encoding
explains, and a UTF-8 file with a few bytes of another encoding are refused with the byte
offset and line where they start.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from nocodetune.data import charset
from nocodetune.data.charset import Alternative
from nocodetune.data.formats import extension_of
from nocodetune.errors import DataError

_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
# control characters that never occur in text: C0 except tab/newline/CR/FF/VT, DEL, and C1
_CONTROL_RE = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
EncodingSource = Literal["bom", "utf-8", "detected", "given"]
ENCODING_HINT = "if you know the file's encoding, name it: `--encoding NAME` with `data add`, the `encoding` form field with POST /api/files"


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str
    source: EncodingSource = "utf-8"
    alternatives: tuple[Alternative, ...] = ()  # other encodings that read the file almost as well


def bom_encoding(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def check_encoding(name: str) -> str:
    """Python's name for an encoding the user gave, or a DataError naming the `encoding` field."""
    try:
        return charset.canonical(name.strip())
    except (LookupError, ValueError):
        raise DataError(
            f"unknown text encoding {name!r}",
            field="encoding",
            hint="use a name Python knows, e.g. utf-8, utf-16, cp1252, cp1254, iso-8859-9, shift_jis, gb18030",
        ) from None


def line_of(data: bytes, offset: int) -> int:
    """The 1-based line of a byte offset in an ASCII-compatible file."""
    return data.count(b"\n", 0, offset) + 1


def _binary_error(display: str, offset: int, line: int | None) -> DataError:
    where = f"byte offset {offset}" + (f" (line {line})" if line is not None else "")
    if extension_of(display) in ("csv", "tsv"):
        hint = "check that the file is what its extension says (a spreadsheet saved as .csv must be exported as CSV, not renamed)"
    else:
        hint = f"check that the file is what its extension (.{extension_of(display)}) says; a text file holds no control characters"
    return DataError(f"{display} contains binary content at {where}; it is not a text file", file=display, row=line, hint=hint)


def _undecodable_error(display: str, data: bytes, offset: int) -> DataError:
    line = line_of(data, offset)
    return DataError(
        f"{display} has undecodable bytes at byte offset {offset} (line {line}): it is not UTF-8 and no other text encoding fits",
        file=display,
        row=line,
        hint=f"save the file as UTF-8 (in Excel: 'CSV UTF-8'; in an editor: 'Save with encoding UTF-8'); {ENCODING_HINT}",
    )


def _mixed_error(display: str, data: bytes, offset: int) -> DataError:
    line = line_of(data, offset)
    return DataError(
        f"{display} is UTF-8 except for byte 0x{data[offset]:02x} at byte offset {offset} (line {line}): "
        "it mixes two encodings (text pasted in from another file?)",
        file=display,
        row=line,
        hint=f"fix or remove line {line} and save the file as UTF-8; {ENCODING_HINT}",
    )


def _mostly_utf8(data: bytes) -> bool:
    """True when most non-ASCII bytes form valid UTF-8: a UTF-8 file with a few stray bytes, not a legacy one."""
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    good = len(text) - len(text.encode("ascii", errors="ignore")) - bad
    return good >= 3 and good >= 2 * bad


def _check_controls(text: str, encoding: str, display: str) -> None:
    match = _CONTROL_RE.search(text)
    if match:
        codec, bom = encoding.replace("-sig", ""), 3 if encoding == "utf-8-sig" else 0
        if codec in ("utf-16", "utf-32"):  # encoding a prefix would add a BOM of its own
            codec, bom = f"{codec}-le", 2 if codec == "utf-16" else 4
        offset = bom + len(text[: match.start()].encode(codec, errors="replace"))
        raise _binary_error(display, offset, text.count("\n", 0, match.start()) + 1)


def _decode_given(data: bytes, encoding: str, display: str) -> DecodedText:
    codec = check_encoding(encoding)
    if codec == "utf-8" and data.startswith(codecs.BOM_UTF8):
        codec = "utf-8-sig"
    try:
        text = data.decode(codec)
    except UnicodeDecodeError as exc:
        line = line_of(data, exc.start)
        raise DataError(
            f"{display} cannot be read as {codec}: byte 0x{data[exc.start]:02x} at byte offset {exc.start} (line {line}) is not valid {codec}",
            file=display,
            row=line,
            field="encoding",
            hint="leave the encoding out to let NoCodeTune detect it, or name another one",
        ) from None
    return DecodedText(text=text, encoding=codec, source="given")


def _detect(data: bytes, display: str) -> DecodedText:
    bom = bom_encoding(data)
    if bom:
        try:
            return DecodedText(text=data.decode(bom), encoding=bom, source="bom")
        except UnicodeDecodeError as exc:
            raise _undecodable_error(display, data, exc.start) from None
    nul = data.find(b"\x00")
    if nul >= 0:
        unicode = charset.detect_unicode_without_bom(data)
        if unicode is None:
            raise _binary_error(display, nul, line_of(data, nul))
        return DecodedText(text=data.decode(unicode), encoding=unicode, source="detected")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    else:
        if "\x1b" in text:  # ISO-2022 (7-bit, with escape sequences) is also valid ASCII
            found = charset.detect(data)
            if found is not None:
                return DecodedText(text=data.decode(found.encoding), encoding=found.encoding, source="detected")
        return DecodedText(text=text, encoding="utf-8", source="utf-8")
    if _mostly_utf8(data):
        raise _mixed_error(display, data, first_bad)
    found = charset.detect(data)
    if found is None:
        raise _undecodable_error(display, data, first_bad)
    return DecodedText(text=data.decode(found.encoding), encoding=found.encoding, source="detected", alternatives=found.alternatives)


def decode_text(data: bytes, display: str, encoding: str | None = None) -> DecodedText:
    """Decode a whole file, or raise a DataError naming the byte offset and line where it fails.

    `encoding` (the user's, or one stored in a version's meta) skips detection.
    """
    if not data:
        raise DataError(f"{display} is empty", file=display, hint="the file has no bytes; export it again")
    decoded = _decode_given(data, encoding, display) if encoding else _detect(data, display)
    text = decoded.text
    if text.startswith("\ufeff"):  # utf-16/32 keep no BOM, but be sure
        text = text[1:]
    _check_controls(text, decoded.encoding, display)
    if not text or text.isspace():  # (no .strip(): that would copy a large file's text)
        raise DataError(f"{display} contains only whitespace", file=display)
    return DecodedText(text=text, encoding=decoded.encoding, source=decoded.source, alternatives=decoded.alternatives)


def file_encoding(path: Path, display: str) -> str:
    """The encoding a text file is read in, judged on the whole file (for readers that stream it afterwards)."""
    return decode_text(path.read_bytes(), display).encoding


def encoding_notes(decoded: DecodedText) -> list[str]:
    """What to tell the user about a detected encoding: which one, and which others would also fit."""
    if decoded.source != "detected":
        return []
    note = f"encoding detected: {decoded.encoding}"
    if decoded.alternatives:
        others = "; ".join(a.describe() for a in decoded.alternatives)
        note += f"; also plausible: {others}. If one of those is right, add the file again naming its encoding"
    return [note]
