"""Bytes → text for text-based dataset files (CSV, TSV, JSON, JSONL, TXT, MD, HTML).

Users bring files saved by Excel on Windows, by editors that add a BOM, or by accident
(a zip renamed .csv). Text is accepted as UTF-8, as whatever a BOM says, or as the
encoding charset-normalizer finds; binary content and bytes no encoding explains are
refused with the byte offset where they start.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

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
SAMPLE_BYTES = 1 << 20  # how much of a file encoding detection looks at


@dataclass(frozen=True)
class DecodedText:
    text: str
    encoding: str


def bom_encoding(data: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return encoding
    return None


def _binary_error(display: str, offset: int) -> DataError:
    return DataError(
        f"{display} contains binary content at byte offset {offset}; it is not a text file",
        file=display,
        hint="check that the file is what its extension says (a spreadsheet saved as .csv must be exported as CSV, not renamed)",
    )


def _undecodable_error(display: str, offset: int) -> DataError:
    return DataError(
        f"{display} has undecodable bytes at byte offset {offset}: it is not UTF-8 and no other text encoding fits",
        file=display,
        hint="save the file as UTF-8 (in Excel: 'CSV UTF-8'; in an editor: 'Save with encoding UTF-8')",
    )


def _check_controls(text: str, encoding: str, display: str, undecodable: bool) -> None:
    match = _CONTROL_RE.search(text)
    if match:
        offset = len(text[: match.start()].encode(encoding.replace("-sig", ""), errors="replace"))
        raise (_undecodable_error if undecodable else _binary_error)(display, offset)


def sniff_encoding(sample: bytes, display: str) -> str:
    """The encoding of a file from its first bytes (a sample may end mid-character)."""
    if not sample:
        raise DataError(f"{display} is empty", file=display, hint="the file has no bytes; export it again")
    bom = bom_encoding(sample)
    if bom:
        return bom
    nul = sample.find(b"\x00")
    if nul >= 0:
        raise _binary_error(display, nul)
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError as exc:
        return _guess_encoding(sample, exc.start, display)


def _guess_encoding(data: bytes, first_bad: int, display: str) -> str:
    """charset-normalizer's best guess for bytes that are not UTF-8."""
    import charset_normalizer

    best = charset_normalizer.from_bytes(data).best()
    if best is None:
        raise _undecodable_error(display, first_bad)
    return str(best.encoding)


def decode_text(data: bytes, display: str) -> DecodedText:
    """Decode a whole file, or raise a DataError naming the byte offset where it fails."""
    encoding = sniff_encoding(data[:SAMPLE_BYTES], display)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        if encoding != "utf-8" or len(data) <= SAMPLE_BYTES:
            raise _undecodable_error(display, exc.start) from None
        # plain ASCII at the start, another encoding further on: look at the whole file
        encoding = _guess_encoding(data, exc.start, display)
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError as again:
            raise _undecodable_error(display, again.start) from None
    if text.startswith("\ufeff"):  # utf-16/32 keep no BOM, but be sure
        text = text[1:]
    guessed = encoding not in ("utf-8", "utf-8-sig", "utf-16", "utf-32")
    _check_controls(text, encoding, display, undecodable=guessed)
    if not text.strip():
        raise DataError(f"{display} contains only whitespace", file=display)
    return DecodedText(text=text, encoding=encoding)
