"""Readers for running text: TXT, Markdown, HTML, PDF and DOCX → rows of one `text` column.

`split="paragraph"` (the default) makes one row per paragraph (per page for PDF), which
suits continued pre-training on many short passages; `split="document"` keeps the whole
file as one row. bs4, pypdf and python-docx are imported only when such a file is read.
"""

from __future__ import annotations

import re
from pathlib import Path

from nocodetune.data.decode import DecodedText, decode_text
from nocodetune.data.formats import TextSplit
from nocodetune.data.table import Table, library_errors, with_encoding
from nocodetune.errors import DataError

_BLANK_LINE_RE = re.compile(r"\n[ \t]*\n")
_FENCE_RE = re.compile(r"^\s*(```|~~~)")
_HEADING_RE = re.compile(r"^#{1,6} [^\n]*$")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
_HTML_BLOCKS = ["p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "pre", "blockquote", "td", "th", "dt", "dd", "figcaption", "caption"]


def _text_table(chunks: list[str], fmt: str, split: TextSplit, decoded: DecodedText | None = None) -> Table:
    texts = [c.strip() for c in chunks]
    texts = [t for t in texts if t]
    if split == "document" and texts:
        texts = ["\n\n".join(texts)]
    bad = sum(len(_SURROGATE_RE.findall(t)) for t in texts)
    if bad:  # text extracted from a PDF can hold broken characters; one glyph does not spoil a document
        texts = [_SURROGATE_RE.sub("\ufffd", t) for t in texts]
    table = Table(rows=[{"text": t} for t in texts], columns=["text"], format=fmt, text_split=split)
    if bad:
        table.notes.append(f"{bad} character{'s' if bad != 1 else ''} of the extracted text {'were' if bad != 1 else 'was'} not valid Unicode and became '\ufffd'")
    return with_encoding(table, decoded) if decoded is not None else table


def paragraphs(text: str) -> list[str]:
    """Blocks separated by blank lines."""
    return _BLANK_LINE_RE.split(text.replace("\r\n", "\n").replace("\r", "\n"))


def markdown_blocks(text: str) -> list[str]:
    """Paragraphs of a Markdown text; a fenced code block stays in one piece even with blank lines."""
    blocks: list[str] = []
    current: list[str] = []
    in_fence = False
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if _FENCE_RE.match(line):
            in_fence = not in_fence
        if not line.strip() and not in_fence:
            if current:
                blocks.append("\n".join(current))
            current = []
        else:
            current.append(line)
    if current:
        blocks.append("\n".join(current))
    return _attach_headings(blocks)


def _attach_headings(blocks: list[str]) -> list[str]:
    """A block that is only a heading joins the block after it: a title alone is no example."""
    out: list[str] = []
    pending: list[str] = []
    for block in blocks:
        if _HEADING_RE.match(block.strip()):
            pending.append(block)
            continue
        out.append("\n\n".join([*pending, block]))
        pending = []
    if pending:
        out.append("\n\n".join(pending))
    return out


def read_plain_text(path: Path, fmt: str, display: str, split: TextSplit, encoding: str | None = None) -> Table:
    decoded = decode_text(path.read_bytes(), display, encoding)
    if split == "document":
        return _text_table([decoded.text], fmt, split, decoded)
    chunks = markdown_blocks(decoded.text) if fmt == "md" else paragraphs(decoded.text)
    return _text_table(chunks, fmt, split, decoded)


def read_html(path: Path, display: str, split: TextSplit, encoding: str | None = None) -> Table:
    from bs4 import BeautifulSoup

    decoded = decode_text(path.read_bytes(), display, encoding)
    with library_errors(display, "HTML page"):
        soup = BeautifulSoup(decoded.text, "html.parser")
        for tag in soup(["script", "style", "noscript", "template", "head"]):
            tag.decompose()
        for br in soup.find_all("br"):
            br.replace_with("\n")
        blocks = _innermost_blocks(soup)
        if blocks:
            chunks = [" ".join(b.get_text().split()) if b.name != "pre" else b.get_text() for b in blocks]
        else:  # no block markup: the page's text lines
            lines = [" ".join(line.split()) for line in soup.get_text("\n").split("\n")]
            chunks = ["\n".join(line for line in lines if line)]
    return _text_table(chunks, "html", split, decoded)


def _innermost_blocks(soup: object) -> list[object]:
    """Block elements holding no other block, so that a <li> holding a <p> is not read twice.

    One pass: each block marks its nearest block ancestor as not innermost. (Asking every
    block whether it holds another is quadratic: 8,000 unclosed <p> took 9 s.)
    """
    names = set(_HTML_BLOCKS)
    blocks = soup.find_all(_HTML_BLOCKS)  # type: ignore[attr-defined]
    holders: set[int] = set()
    for block in blocks:
        parent = block.parent
        while parent is not None and parent.name not in names:
            parent = parent.parent
        if parent is not None:
            holders.add(id(parent))
    return [b for b in blocks if id(b) not in holders]


def read_pdf(path: Path, display: str, split: TextSplit) -> Table:
    from pypdf import PdfReader

    with library_errors(display, "PDF"):
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise DataError(f"{display} is an encrypted PDF", file=display, hint="save an unprotected copy of the PDF")
        pages = [page.extract_text() or "" for page in reader.pages]
    table = _text_table(pages, "pdf", split)
    if not table.rows:
        raise DataError(
            f"{display} has no extractable text ({len(pages)} page{'s' if len(pages) != 1 else ''})",
            file=display,
            hint="a scanned PDF holds images, not text: run OCR on it first",
        )
    return table


def read_docx(path: Path, display: str, split: TextSplit) -> Table:
    import docx

    with library_errors(display, ".docx document", "save it from Word as .docx"):
        document = docx.Document(str(path))
        chunks = [p.text for p in document.paragraphs]
        for table in document.tables:  # table text after the body text
            for row in table.rows:
                chunks.append(" | ".join(cell.text.strip() for cell in row.cells))
    return _text_table(chunks, "docx", split)
