"""What `data add` tells the user about a new version: for each training format its columns
fit, how many rows become examples and which rows are refused, and why.

The counting is `data.examples.build_examples`, the function validate and training use, so
a row the report calls usable is one training accepts, and a refusal reads the same in
the report, in validate and in a failed run. Rows are streamed in chunks, so a large file
is reported on without holding it in memory.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, Field

from nocodetune.data.formats import TextSplit
from nocodetune.data.table import Row

CHUNK_ROWS = 2000
MAX_LISTED_ROWS = 10


class RefusalGroup(BaseModel):
    """Rows refused for one reason."""

    message: str = Field(description="Why, naming the column (the same text validate and training give).")
    count: int
    rows: list[int] = Field(description=f"The first {MAX_LISTED_ROWS} row numbers (1-based data rows).")


class FormatReport(BaseModel):
    """One training format the dataset's columns fit."""

    format: str = Field(description="text, prompt_completion, alpaca, messages or preference (dataset.format).")
    columns: dict[str, str] = Field(description="role → column, as `dataset.format: auto` would map them.")
    usable: int = Field(description="Rows that become training examples in this format.")
    refused: int = Field(description="Rows this format cannot use.")
    reasons: list[RefusalGroup] = Field(default_factory=list)

    def summary(self) -> str:
        """'prompt_completion (prompt → question, completion → answer): 98 rows usable, 2 refused: ...'."""
        mapping = ", ".join(f"{role} ← {column!r}" for role, column in self.columns.items())
        text = f"{self.format} ({mapping}): {self.usable} row{'s' if self.usable != 1 else ''} usable"
        if self.refused:
            reasons = "; ".join(f"{g.message} (row{'s' if g.count != 1 else ''} {_rows(g)})" for g in self.reasons)
            text += f", {self.refused} refused: {reasons}"
        return text


def _rows(group: RefusalGroup) -> str:
    shown = ", ".join(str(n) for n in group.rows)
    return shown + (f" and {group.count - len(group.rows)} more" if group.count > len(group.rows) else "")


def report_rows(rows: Iterable[Row], columns: list[str]) -> list[FormatReport]:
    """The per-format report for a dataset's rows (streamed) and columns."""
    from nocodetune.data.examples import build_examples, usable_formats
    from nocodetune.records.schema import DatasetSection

    formats = usable_formats(columns)
    if not formats:
        return []
    sections = {fmt: DatasetSection(format=fmt) for fmt in formats}  # type: ignore[arg-type]
    reports: dict[str, FormatReport] = {}
    groups: dict[str, dict[str, RefusalGroup]] = {fmt: {} for fmt in formats}
    offset = 0
    iterator = iter(rows)
    while chunk := list(itertools.islice(iterator, CHUNK_ROWS)):
        for fmt in formats:
            built = build_examples(chunk, sections[fmt], columns)
            report = reports.setdefault(fmt, FormatReport(format=fmt, columns=built.columns, usable=0, refused=0))
            report.usable += len(built.examples)
            report.refused += len(built.refused)
            for problem in built.refused:
                group = groups[fmt].setdefault(problem.message, RefusalGroup(message=problem.message, count=0, rows=[]))
                group.count += 1
                if len(group.rows) < MAX_LISTED_ROWS:
                    group.rows.append(problem.row + offset)
        offset += len(chunk)
    for fmt, report in reports.items():
        report.reasons = sorted(groups[fmt].values(), key=lambda g: -g.count)
    return [reports[fmt] for fmt in formats if fmt in reports]


def report_file(path: Path, fmt: str, columns: list[str], split: TextSplit, display: str, encoding: str | None) -> list[FormatReport]:
    """The report for a stored (or staged) file, read with the encoding already found for it."""
    from nocodetune.data.readers import iter_rows

    return report_rows(iter_rows(path, fmt=fmt, split=split, display=display, encoding=encoding), columns)
