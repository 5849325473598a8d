"""CLI: `nocodetune doctor` — check Python, packages, torch/GPU, disk, workspace and model."""

from __future__ import annotations

import typer
from rich.markup import escape
from rich.table import Table

from nocodetune.cli.common import console, workspace_from

_STYLE = {"ok": "[green]ok[/]", "warn": "[yellow]warn[/]", "fail": "[bold red]FAIL[/]"}


def doctor(
    ctx: typer.Context,
    as_json: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
    skip_torch: bool = typer.Option(False, "--skip-torch", help="Do not import torch (saves a few seconds)."),
) -> None:
    """Check that this machine can run NoCodeTune; exit 1 with the fixes when something fails."""
    from nocodetune import doctor as checks

    ws = workspace_from(ctx, must_exist=False)
    report = checks.run_checks(ws, include_torch=not skip_torch)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
    else:
        table = Table(header_style="bold")
        table.add_column("check")
        table.add_column("status")
        table.add_column("details")
        for check in report.checks:
            table.add_row(escape(check.name), _STYLE[check.status], escape(check.detail))
        console.print(table)
        warnings = [c for c in report.checks if c.status == "warn" and c.fix]
        if report.ok:
            console.print("[bold green]All required checks passed.[/]")
        else:
            console.print("[bold red]Some checks failed. To fix:[/]")
            for fix in report.fixes:
                console.print(f"  • {escape(fix)}")
        for check in warnings:
            console.print(f"[yellow]Tip ({escape(check.name)}):[/] {escape(check.fix or '')}")
    if not report.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)
