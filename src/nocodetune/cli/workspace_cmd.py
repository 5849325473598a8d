"""CLI: `nocodetune workspace reindex` — rebuild the registry from the folders."""

from __future__ import annotations

import typer
from rich.markup import escape

from nocodetune.cli.common import console, err_console, workspace_from
from nocodetune.errors import NocodetuneError

app = typer.Typer(no_args_is_help=True)


@app.command("reindex")
def reindex(ctx: typer.Context) -> None:
    """Rebuild nocodetune.db from files/*/v*/meta.json and jobs/*/ (the folders are the truth)."""
    from nocodetune import db
    from nocodetune.jobs.registry import lock_probe

    try:
        ws = workspace_from(ctx)
        counts = db.reindex(ws, lock_probe(ws))
    except NocodetuneError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    console.print(f"Reindexed {escape(str(ws.root))}: {counts['jobs']} jobs, {counts['dataset_versions']} dataset versions.")
