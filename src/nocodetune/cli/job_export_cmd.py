"""CLI: `nocodetune job export NAME --format FORMAT` and `nocodetune job exports NAME`, added to `job_cmd.app`.

An export runs in this process (it is about to load the model anyway) with a progress
bar; `--detach` starts it in the background instead, like the API does. Refusals (an
unsupported architecture, a second adapter in the lineage, an unavailable quantiser, a
hub push without consent) are printed before anything is loaded or written.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn
from rich.table import Table

from nocodetune.cli.common import console, err_console, workspace_from
from nocodetune.errors import NocodetuneError
from nocodetune.records.exports import DEFAULT_QUANT, EXPORT_FORMATS, GGUF_QUANTS

FORMAT_HELP = (
    "merged (one Hugging Face folder: the whole lineage merged), adapter (portable LoRA adapter), "
    "gguf (llama.cpp / LM Studio), ollama (GGUF + Modelfile), hub (push the merged folder to the Hugging Face Hub)."
)


def _fail(exc: NocodetuneError) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")
    return typer.Exit(2)


def export(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A succeeded job."),
    format: str = typer.Option(..., "--format", "-f", help=FORMAT_HELP),
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the export to this new folder (default: jobs/NAME/exports/ID/model)."),
    quant: str | None = typer.Option(None, "--quant", "-q", help=f"GGUF / Ollama weight type: {', '.join(GGUF_QUANTS)} (default {DEFAULT_QUANT})."),
    repo: str | None = typer.Option(None, "--repo", help="Hub: repository id (user/name). Needs HF_TOKEN and NOCODETUNE_ALLOW_HUB_UPLOADS=1."),
    public: bool = typer.Option(False, "--public", help="Hub: create the repository public (default private)."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Run in the background and return at once."),
) -> None:
    """Export a trained job's model where it will be used: a merged folder, an adapter, a GGUF, an Ollama model or the Hub."""
    from pydantic import ValidationError

    from nocodetune.jobs.exports import checked_request, export_slot, record_export, run_here, start_background
    from nocodetune.records.exports import ExportRequest

    if format not in EXPORT_FORMATS:
        err_console.print(f"[bold red]Error:[/] unknown --format {escape(format)!r}; use one of {', '.join(EXPORT_FORMATS)}")
        raise typer.Exit(2)
    if quant is not None and quant not in GGUF_QUANTS:
        err_console.print(f"[bold red]Error:[/] unknown --quant {escape(quant)!r}; use one of {', '.join(GGUF_QUANTS)}")
        raise typer.Exit(2)
    if quant is not None and format not in ("gguf", "ollama"):
        err_console.print(f"[bold red]Error:[/] --quant applies to --format gguf and ollama, not {escape(format)}")
        raise typer.Exit(2)
    try:
        request = ExportRequest(format=format, quant=quant, out=str(out) if out else None, repo=repo, private=not public)  # type: ignore[arg-type]
    except ValidationError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc.errors()[0]['msg']))}")
        raise typer.Exit(2) from None
    try:
        ws = workspace_from(ctx)
        request = checked_request(ws, name, request)  # every refusal first, whatever the machine is doing
        with export_slot(ws, name) as slot:  # one of the machine's job slots, or a clear error naming who holds them
            record = record_export(ws, name, request)
            if detach:
                start_background(ws, name, record.id, slot)
                console.print(f"[bold green]Started export {escape(record.id)}[/] of job {escape(name)} in the background.")
                console.print(f"Check it: nocodetune job exports {escape(name)}")
                return
            console.print(f"Exporting job {escape(name)} as {escape(format)}" + (f" ({escape(request.effective_quant() or '')})" if request.effective_quant() else "") + f" → {escape(record.folder)}")
            with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(), TextColumn("{task.fields[text]}"), console=console) as bar:
                task = bar.add_task(record.id, total=1.0, text="starting")

                def on_event(event: object) -> None:
                    data = event.data()  # type: ignore[attr-defined]
                    if data["type"] == "progress":
                        bar.update(task, completed=data.get("progress", 0.0), text=escape(str(data.get("text", ""))[:60]))
                    elif data["type"] == "finished":
                        bar.update(task, completed=1.0, text="done")

                record = run_here(ws, name, record.id, on_event=on_event)
    except NocodetuneError as exc:
        raise _fail(exc) from None
    if record.status != "succeeded":
        err_console.print(f"[bold red]Export {escape(record.id)} failed:[/] {escape(record.error or '')}")
        if record.hint:
            err_console.print(f"Hint: {escape(record.hint)}")
        raise typer.Exit(1)
    console.print(f"[bold green]Exported[/] {escape(record.id)}: {len(record.files)} files in {escape(record.folder)}")
    for key, value in record.details.items():
        console.print(f"  {escape(key)}: {escape(value)}")
    for warning in record.warnings:
        console.print(f"  [yellow]note:[/] {escape(warning)}")
    if "command" in record.details:
        console.print(f"Import it: cd {escape(record.folder)} && {escape(record.details['command'])}")


def exports(ctx: typer.Context, name: str = typer.Argument(..., help="Job whose exports to list.")) -> None:
    """List a job's exports: format, status, where the files are."""
    from nocodetune.jobs.exports import job_exports

    try:
        records = job_exports(workspace_from(ctx), name)
    except NocodetuneError as exc:
        raise _fail(exc) from None
    if not records:
        console.print(f"Job {escape(name)} has no exports yet. Make one: nocodetune job export {escape(name)} --format merged")
        return
    table = Table("id", "format", "status", "folder", "note")
    for r in records:
        note = r.error or r.details.get("command") or r.details.get("url") or ""
        table.add_row(escape(r.id), escape(r.request.format + (f" {r.request.effective_quant()}" if r.request.effective_quant() else "")), escape(r.status), escape(r.folder), escape(note))
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add export/exports to the `job` command group (once)."""
    if getattr(app, "_nocodetune_export_commands", False):
        return
    app.command("export")(export)
    app.command("exports")(exports)
    app._nocodetune_export_commands = True  # type: ignore[attr-defined]
