"""CLI: `nocodetune job create|validate|list|show|import|clone|delete`.

`run`, `cancel`, `resume` and `logs` live in `job_run_cmd`, which adds them to this `app`.
Services are imported inside the commands so that `nocodetune --help` stays fast.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer
from rich.markup import escape
from rich.table import Table

from nocodetune.cli.common import console, err_console, workspace_from
from nocodetune.errors import NocodetuneError

if TYPE_CHECKING:
    from nocodetune.config.validate import ValidationReport
    from nocodetune.workspace import Workspace

app = typer.Typer(no_args_is_help=True)

SET_HELP = "Change a setting, e.g. --set training.learning_rate=2e-4 (repeatable; values are YAML: true, 16, [q_proj, v_proj])."


@contextmanager
def user_errors() -> Iterator[None]:
    """Render a NocodetuneError as one red message and exit 2 (no traceback)."""
    try:
        yield
    except NocodetuneError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


# -- create -------------------------------------------------------------------------


@app.command("create")
def create(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Job name (letters, digits, '.', '_', '-')."),
    base: Optional[str] = typer.Option(None, "--base", "-b", help="Base job from archive/ (default: the parent's base, else lora_train)."),
    parent: Optional[str] = typer.Option(None, "--parent", "-p", help="Continue from this job's trained model."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Dataset as NAME@VERSION (NAME alone: latest)."),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    description: Optional[str] = typer.Option(None, "--description", help="What this job is for."),
) -> None:
    """Create a job folder (config, dataset snapshot); nothing trains until `job run`."""
    from nocodetune.config.overrides import parse_set_args
    from nocodetune.jobs.create import create_job
    from nocodetune.jobs.spec import JobSpec

    with user_errors():
        ws = workspace_from(ctx)
        spec = JobSpec(name=name, base=base, parent=parent, dataset=dataset, description=description, set=parse_set_args(set_))
        resolved = create_job(ws, spec)
    lineage = resolved.lineage
    console.print(f"[bold green]Created job {escape(name)}[/] in {escape(str(ws.job(name).root))}")
    console.print(f"  base: {escape(lineage.base or '-')}   parent: {escape(lineage.parent or '-')}   dataset: {escape(resolved.config.dataset.ref or '-')}")
    changed = {k: v for k, v in resolved.sources.items() if v == "job"}
    if changed:
        console.print("  your settings: " + ", ".join(escape(k) for k in sorted(changed)))
    console.print(f"Next: nocodetune job validate {escape(name)}  ·  nocodetune job run {escape(name)}")


# -- validate -----------------------------------------------------------------------


def render_report(report: ValidationReport) -> None:
    """Print a ValidationReport: errors, warnings and the numbers users ask about."""
    stats = report.stats
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("dataset", stats.get("dataset")),
        ("format", stats.get("format") and f"{stats['format']} (columns {json.dumps(stats.get('columns', {}))})"),
        ("rows", stats.get("rows") is not None and f"{stats['rows']} ({stats.get('train_rows', 0)} train, {stats.get('eval_rows', 0)} eval)"),
        ("steps", stats.get("total_steps") is not None and f"{stats['total_steps']} ({stats.get('steps_per_epoch')} per epoch)"),
        ("model", stats.get("model") and f"{stats['model']} ({stats.get('parameters', 0) / 1e6:.1f}M parameters)"),
        ("method", stats.get("method")),
    ]
    tokens = stats.get("tokens")
    if tokens:
        rows.append(("tokens", f"mean {tokens['mean']}, max {tokens['max']}, {tokens['over_max_length']} over max_length {tokens['max_length']}"))
    memory = stats.get("memory")
    if memory:
        rows.append(("memory", f"~{memory['total_gb']} GB (model+optimizer {memory['model_gb']} GB, activations {memory['activations_gb']} GB)"))
    for label, value in rows:
        if value:
            table.add_row(label, escape(str(value)))
    console.print(table)
    for issue in report.errors:
        console.print(f"[bold red]error[/] {escape(issue.field or '')}: {escape(issue.message)}")
    for issue in report.warnings:
        console.print(f"[yellow]warning[/] {escape(issue.field or '')}: {escape(issue.message)}")
    console.print("[bold green]OK: ready to run[/]" if report.ok else f"[bold red]Not ready: {len(report.errors)} error(s)[/]")


@app.command("validate")
def validate(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Job to check."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Check a job before training (columns, empty rows, model, tokens, memory, steps); exit 1 if not ready."""
    from nocodetune.records.job import read_resolved
    from nocodetune.config.validate import preflight
    from nocodetune.jobs.create import require_job

    with user_errors():
        ws = workspace_from(ctx)
        paths = require_job(ws, name)
        report = preflight(ws, read_resolved(paths), paths.root)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        render_report(report)
    if not report.ok:
        raise typer.Exit(1)


# -- list / show --------------------------------------------------------------------

def job_statuses(ws: Workspace) -> dict[str, str]:
    """name → status from the job service's registry (kept in step with the job folders)."""
    from nocodetune.jobs.service import JobService

    service = JobService(ws)
    statuses: dict[str, str] = {}
    offset = 0
    while True:
        rows, total = service.list(offset=offset, limit=500)
        statuses.update({row.name: row.status for row in rows})
        offset += len(rows)
        if not rows or offset >= total:
            return statuses


@app.command("list")
def list_jobs(ctx: typer.Context, as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List jobs with their base, parent, dataset and status."""
    from nocodetune.records.job import job_names, read_resolved

    with user_errors():
        ws = workspace_from(ctx)
        statuses = job_statuses(ws)
        items = []
        for name in job_names(ws):
            try:
                resolved = read_resolved(ws.job(name))
            except NocodetuneError:
                items.append({"name": name, "base": None, "parent": None, "dataset": None, "status": "unreadable"})
                continue
            items.append(
                {
                    "name": name,
                    "base": resolved.lineage.base,
                    "parent": resolved.lineage.parent,
                    "dataset": resolved.config.dataset.ref,
                    "method": resolved.config.method,
                    "status": statuses.get(name, "created"),
                }
            )
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    if not items:
        console.print("No jobs yet. Create one with `nocodetune job create NAME --dataset NAME@VERSION`.")
        return
    table = Table(header_style="bold")
    for col in ("name", "base", "parent", "dataset", "status"):
        table.add_column(col)
    for item in items:
        table.add_row(*(escape(str(item.get(col) or "-")) for col in ("name", "base", "parent", "dataset", "status")))
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Job to show."),
    all_keys: bool = typer.Option(False, "--all", help="Also list settings left at their schema default."),
    as_json: bool = typer.Option(False, "--json", help="Print resolved.json."),
) -> None:
    """Show a job's effective config, where each value came from, its lineage and datasets."""
    from nocodetune.config.overrides import flatten
    from nocodetune.jobs.create import children_of, require_job
    from nocodetune.records.job import read_resolved

    with user_errors():
        ws = workspace_from(ctx)
        paths = require_job(ws, name)
        resolved = read_resolved(paths)
        children = children_of(ws, name)
        from nocodetune.jobs.service import JobService

        status = JobService(ws).get(name).status
    if as_json:
        typer.echo(resolved.model_dump_json(indent=2))
        return
    lineage = resolved.lineage
    console.print(f"[bold]{escape(name)}[/]  status: {status}  created: {escape(resolved.created_at)}")
    if resolved.config.description:
        console.print(escape(resolved.config.description))
    chain = " → ".join([*lineage.base_chain]) or "-"
    console.print(f"base: {escape(chain)}   parents: {escape(' → '.join(lineage.parent_chain) or '-')}   children: {escape(', '.join(children) or '-')}")
    for ds in resolved.datasets:
        console.print(f"dataset: {escape(ds.name)}@{ds.version}  {ds.rows} rows  {escape(ds.format)}  sha256 {ds.sha256[:12]}  ({escape(ds.file)})")

    table = Table(header_style="bold")
    table.add_column("setting")
    table.add_column("value")
    table.add_column("from")
    for key, value in flatten(resolved.config.model_dump()).items():
        origin = resolved.sources.get(key, "schema")
        if origin == "schema" and not all_keys:
            continue
        style = {"job": "bold green"}.get(origin, "cyan" if origin.startswith("parent:") else "dim" if origin == "schema" else "")
        table.add_row(escape(key), escape(_fmt(value)), f"[{style}]{escape(origin)}[/]" if style else escape(origin))
    console.print(table)
    if not all_keys:
        console.print("[dim]Settings at their schema default are hidden; --all shows them.[/]")


# -- import / clone / delete --------------------------------------------------------


@app.command("import")
def import_legacy(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="An original NoCodeTune job_args.json (a list of jobs, or one job's settings).", exists=False),
    name: Optional[str] = typer.Option(None, "--name", "-n", help="Name for a job the file does not name (files that name their jobs need none)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", "-d", help="Dataset NAME@VERSION for every job (default: the data file each job names, added to files/)."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Change a setting of every imported job, e.g. --set model.source=default."),
) -> None:
    """Create jobs from an original NoCodeTune job_args.json, parents first.

    train_type full_train/peft_train become the full_train/lora_train bases, training_args
    and lora_configs map onto the config schema, and LoRA module names of another model
    family (e.g. GPT-NeoX's query_key_value) are renamed to the target model's. Nothing is
    created unless every job can be.
    """
    from nocodetune.config.overrides import parse_set_args
    from nocodetune.jobs.create import import_legacy_jobs

    with user_errors():
        ws = workspace_from(ctx)
        imported = import_legacy_jobs(ws, file, name=name, dataset=dataset, set_values=parse_set_args(set_))
    for resolved, notes in imported:
        lineage = resolved.lineage
        parent = f", parent {escape(lineage.parent)}" if lineage.parent else ""
        console.print(f"[bold green]Imported job {escape(resolved.name)}[/] from {escape(file.name)} (base {escape(lineage.base or '-')}{parent}, dataset {escape(resolved.config.dataset.ref or '-')})")
        for note in notes:
            console.print(f"  [dim]note:[/] {escape(note)}")
    console.print("Next: nocodetune job validate NAME  ·  nocodetune job run NAME")


@app.command("clone")
def clone(
    ctx: typer.Context,
    src: str = typer.Argument(..., help="Job to copy."),
    new: str = typer.Argument(..., help="Name of the copy."),
    set_: list[str] = typer.Option([], "--set", "-s", help=SET_HELP),
    description: Optional[str] = typer.Option(None, "--description", help="What the copy is for."),
) -> None:
    """Copy a job's settings (same base, parent and dataset version) into a new job, with changes."""
    from nocodetune.config.overrides import parse_set_args
    from nocodetune.jobs.create import clone_job

    with user_errors():
        ws = workspace_from(ctx)
        resolved = clone_job(ws, src, new, set_values=parse_set_args(set_), description=description)
    console.print(f"[bold green]Cloned {escape(src)} into {escape(new)}[/] (dataset {escape(resolved.config.dataset.ref or '-')})")


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Job to delete (its folder, outputs included)."),
    force: bool = typer.Option(False, "--force", help="Delete even if other jobs name it as their parent."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete a job folder; refused while it runs, or while child jobs exist (unless --force)."""
    from nocodetune.jobs.create import delete_job, require_job

    with user_errors():
        ws = workspace_from(ctx)
        require_job(ws, name)
        if not yes and not typer.confirm(f"Delete job {name} and all its outputs?", default=False):
            raise typer.Exit(1)
        orphans = delete_job(ws, name, force=force)
    console.print(f"Deleted job {escape(name)}")
    if orphans:
        console.print(f"[yellow]Left without their parent's outputs: {escape(', '.join(orphans))}[/]")


def _register_run_commands() -> None:
    """Add run/cancel/resume/logs from job_run_cmd, when that module is installed."""
    import importlib

    try:
        module = importlib.import_module("nocodetune.cli.job_run_cmd")
    except ModuleNotFoundError as exc:
        if exc.name != "nocodetune.cli.job_run_cmd":
            raise
        return
    register = getattr(module, "register", None)
    if callable(register):
        register(app)


_register_run_commands()
