"""`nocodetune`: the entry point. Sub-commands live in one module each."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from nocodetune import __version__
from nocodetune.cli import data_cmd, demo_cmd, doctor_cmd, init_cmd, job_cmd, job_run_cmd, server_cmd, workspace_cmd
from nocodetune.cli.common import print_error, report_unexpected
from nocodetune.errors import NocodetuneError

app = typer.Typer(
    name="nocodetune",
    help=(
        "Fine-tune language models on your own data without writing code.\n\n"
        "Start with `nocodetune init ./ModelTrainingWorkspace`, add a dataset with "
        "`nocodetune data add FILE --name NAME`, create a job with `nocodetune job create`, "
        "run it with `nocodetune job run`, or try everything at once with `nocodetune demo`."
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"nocodetune {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    workspace: Optional[Path] = typer.Option(
        None, "--workspace", "-w", help="Workspace folder (default: $NOCODETUNE_WORKSPACE, the current folder or a parent, else ./ModelTrainingWorkspace).", show_default=False
    ),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    ctx.obj = {"workspace": workspace}


init_cmd.register(app)
demo_cmd.register(app)
doctor_cmd.register(app)
app.add_typer(data_cmd.app, name="data", help="Versioned datasets: add, list, show, delete.")
job_run_cmd.register(job_cmd.app)  # run, resume, cancel, logs
app.add_typer(job_cmd.app, name="job", help="Jobs: create, validate, run, cancel, resume, list, show.")
app.add_typer(server_cmd.app, name="server", help="AI servers: start, list, status, logs, stop.")
app.add_typer(workspace_cmd.app, name="workspace", help="Workspace maintenance (reindex the registry).")


EXIT_USER_ERROR, EXIT_BUG = 2, 70  # 70: EX_SOFTWARE


def run() -> None:
    """Console-script entry: a user error is its message, anything else one line plus a saved traceback."""
    from nocodetune.settings import apply_network_policy

    apply_network_policy()
    try:
        app()
    except NocodetuneError as exc:
        print_error(exc)
        sys.exit(EXIT_USER_ERROR)
    except (SystemExit, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - the one place that turns a bug into a message
        report_unexpected(exc)
        sys.exit(EXIT_BUG)
