"""`nocodetune data`: add, list, show, versions and delete versioned datasets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Optional

import typer
from rich.markup import escape
from rich.table import Table as RichTable

from nocodetune.cli.common import console, workspace_from
from nocodetune.data.models import DatasetVersionMeta
from nocodetune.data.report import FormatReport
from nocodetune.data.store import DatasetStore, split_ref
from nocodetune.errors import DataError

app = typer.Typer(no_args_is_help=True)

CELL_CHARS = 60  # cells longer than this are cut in tables


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else ("" if value is None else repr(value))
    text = text.replace("\n", "⏎ ")
    return escape(text if len(text) <= CELL_CHARS else text[: CELL_CHARS - 1] + "…")


def _default_name(file: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", file.stem).strip("._-")
    if not name:
        raise DataError(f"cannot make a dataset name from {file.name!r}", field="name", hint="pass --name NAME")
    return name[:100]


def _store(ctx: typer.Context) -> DatasetStore:
    return DatasetStore(workspace_from(ctx))


def _describe(meta: DatasetVersionMeta) -> str:
    encoding = ""
    if meta.encoding:
        how = {"detected": " (detected)", "given": " (as given)"}.get(meta.encoding_source or "", "")
        encoding = f", {meta.encoding}{how}"
    columns = ", ".join(meta.columns)
    return f"{meta.rows} rows, columns: {escape(columns)}, format {meta.format}{encoding}"


@app.command("add")
def add(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="Dataset file: CSV, TSV, JSON, JSONL, Parquet, XLSX, TXT, MD, HTML, PDF or DOCX."),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Dataset name (default: the file name without extension)."),
    tag: list[str] = typer.Option([], "--tag", "-t", help="A tag; repeat for more."),
    split: Literal["paragraph", "document"] = typer.Option(
        "paragraph", "--split", help="Text documents (TXT, MD, HTML, PDF, DOCX): one row per paragraph (per page for PDF), or one per document."
    ),
    encoding: Optional[str] = typer.Option(
        None, "--encoding", "-e", help="Text files: the file's encoding (e.g. cp1254, shift_jis), instead of detecting it from the whole file."
    ),
) -> None:
    """Add a file as the next version of a dataset (nothing is stored if the file cannot be read)."""
    store = _store(ctx)
    result = store.add(file, name if name is not None else _default_name(file), tags=tag, split=split, encoding=encoding)
    meta = result.meta
    if not result.created:
        console.print(f"no new version: same content as [bold]{meta.ref}[/]")
    else:
        console.print(f"added [bold green]{meta.ref}[/]: {_describe(meta)}")
        for note in meta.notes:
            console.print(f"  [dim]note: {escape(note)}[/]")
    _print_report(result.report, meta.columns)


def _print_report(report: list[FormatReport], columns: list[str]) -> None:
    """Per training format: how many rows it can use, and which it refuses and why."""
    if not report:
        console.print(
            f"  [yellow]no training format fits the columns {escape(', '.join(columns))}[/]: name them prompt/completion, "
            "instruction/output, messages, chosen/rejected or text, or map them with dataset.columns in the job"
        )
        return
    console.print("  usable for training as:")
    for entry in report:
        style = "yellow" if entry.refused else "green"
        console.print(f"    [{style}]{escape(entry.summary())}[/]")


@app.command("list")
def list_datasets(ctx: typer.Context) -> None:
    """All datasets with their latest version."""
    datasets = _store(ctx).list()
    if not datasets:
        console.print("no datasets yet; add one with `nocodetune data add FILE --name NAME`")
        return
    table = RichTable("name", "versions", "latest", "rows", "size", "format", "tags", title="Datasets")
    for info in datasets:
        latest = info.latest_meta
        table.add_row(
            escape(info.name), str(len(info.versions)), f"v{info.latest}", str(latest.rows), human_size(latest.size_bytes), latest.format, escape(", ".join(latest.tags))
        )
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME[@VERSION]", help="Dataset, optionally with a version (default: latest)."),
    rows: int = typer.Option(5, "--rows", "-r", min=0, max=1000, help="How many rows to show."),
) -> None:
    """A version's metadata and its first rows."""
    store = _store(ctx)
    name, version = store.parse_ref(ref)
    meta = store.version(name, version)
    console.print(f"[bold]{meta.ref}[/]  {_describe(meta)}")
    console.print(f"  file: {escape(meta.file)} (added as {escape(meta.original_filename)}), {human_size(meta.size_bytes)}, sha256 {meta.sha256[:16]}…")
    console.print(f"  created: {meta.created_at.isoformat(timespec='seconds')}" + (f", tags: {escape(', '.join(meta.tags))}" if meta.tags else ""))
    if meta.text_split:
        console.print(f"  split: one row per {meta.text_split}")
    for note in meta.notes:  # e.g. which encoding was detected, and which others would also fit
        console.print(f"  [dim]note: {escape(note)}[/]")
    if rows:
        page = store.preview(name, version, 0, rows)
        table = RichTable(*(escape(c) for c in page.columns), title=f"first {len(page.rows)} of {page.total} rows")
        for row in page.rows:
            table.add_row(*(_cell(row.get(c)) for c in page.columns))
        console.print(table)


@app.command("versions")
def versions(ctx: typer.Context, name: str = typer.Argument(..., help="Dataset name.")) -> None:
    """Every version of a dataset, oldest first."""
    info = _store(ctx).get(name)
    table = RichTable("version", "created", "rows", "columns", "size", "sha256", "added as", "tags", title=f"Dataset {escape(info.name)}")
    for meta in info.versions:
        table.add_row(
            f"v{meta.version}",
            meta.created_at.strftime("%Y-%m-%d %H:%M"),
            str(meta.rows),
            str(len(meta.columns)),
            human_size(meta.size_bytes),
            meta.sha256[:12],
            escape(meta.original_filename),
            escape(", ".join(meta.tags)),
        )
    console.print(table)


@app.command("delete")
def delete(
    ctx: typer.Context,
    ref: str = typer.Argument(..., metavar="NAME[@VERSION]", help="A dataset (all versions) or one version."),
    force: bool = typer.Option(False, "--force", help="Delete even if jobs use it (they keep their own copy)."),
) -> None:
    """Delete a version, or a whole dataset; refused while a job uses it unless --force."""
    store = _store(ctx)
    name, version = split_ref(ref)
    if version is not None:
        meta = store.delete_version(name, version, force=force)
        console.print(f"deleted {meta.ref}")
    else:
        removed = store.delete(name, force=force)
        console.print(f"deleted dataset {escape(name)} ({len(removed)} version{'s' if len(removed) != 1 else ''})")
