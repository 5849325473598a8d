"""CLI: `nocodetune init [PATH]` — create a workspace with base jobs and the demo."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from nocodetune.cli.common import console
from nocodetune.workspace import DEFAULT_DIRNAME


def init(
    ctx: typer.Context,
    path: Optional[Path] = typer.Argument(None, help=f"Workspace folder to create (default: --workspace, else $NOCODETUNE_WORKSPACE, else ./{DEFAULT_DIRNAME}).", show_default=False),
) -> None:
    """Create a workspace: archive/ base jobs, files/, jobs/ (with demo_job), logs/ and the registry.

    Safe to run again: existing parts are kept as they are, nothing is overwritten.
    """
    from nocodetune.jobs.bootstrap import init_workspace

    from nocodetune.settings import get_settings

    root_obj = ctx.find_root().obj or {}
    target = path or root_obj.get("workspace") or get_settings().workspace or Path.cwd() / DEFAULT_DIRNAME
    result = init_workspace(target)

    if not result.changed:
        console.print(f"[bold]Workspace {escape(str(result.root))} already exists; nothing changed.[/]")
    else:
        console.print(f"[bold green]Workspace ready:[/] {escape(str(result.root))}")
    table = Table(show_header=True, header_style="bold", box=None)
    table.add_column("part")
    table.add_column("state")
    for item in result.created:
        table.add_row(escape(item), "[green]created[/]")
    for item in result.existed:
        table.add_row(escape(item), "[dim]already there, kept[/]")
    for item in result.skipped:
        name, _, why = item.partition(": ")
        table.add_row(escape(name), f"[yellow]skipped[/] {escape(why)}")
    console.print(table)

    ws_opt = f" -w {escape(str(result.root))}"
    console.print("\n[bold]Next steps[/]")
    console.print(f"  nocodetune{ws_opt} data add my_data.csv --name my_data")
    console.print(f"  nocodetune{ws_opt} job create my_job --base lora_train --dataset my_data")
    console.print(f"  nocodetune{ws_opt} job validate my_job")
    console.print(f"  nocodetune{ws_opt} job run my_job")
    if any(item == "jobs/demo_job" for item in (*result.created, *result.existed)):
        console.print(f"  or try the shipped example: nocodetune{ws_opt} job run demo_job")


def register(app: typer.Typer) -> None:
    app.command("init")(init)
