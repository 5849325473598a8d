"""`nocodetune server`: start, list, status, logs and stop AI servers."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from nocodetune.cli.common import console, workspace_from
from nocodetune.servers import manager
from nocodetune.servers.manager import ServerInfo, ServerPlan
from nocodetune.servers.ports import url_for
from nocodetune.workspace import Workspace

app = typer.Typer(no_args_is_help=True)


class Kind(str, Enum):
    api = "api"
    data = "data"
    jobs = "jobs"
    model = "model"


def _uptime(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def _serve_in_process(ws: Workspace, the_plan: ServerPlan, port: int) -> None:
    """Run the planned server in this process (what foreground and managed starts do)."""
    if the_plan.kind == "model":
        from nocodetune.serving.runner import ServeOptions, serve

        serve(ServeOptions(job_dir=the_plan.job_dir, model=the_plan.model, host=the_plan.host, port=port))
        return
    from nocodetune.api.app import ROUTE_GROUPS, serve_api

    serve_api(ws, the_plan.host, port, ROUTE_GROUPS[the_plan.kind])


@app.command("start")
def start(
    ctx: typer.Context,
    kind: Kind = typer.Argument(..., help="api (REST + web UI), data (dataset files), jobs (fine-tuning jobs) or model (OpenAI-compatible)."),
    job: Optional[str] = typer.Option(None, "--job", "-j", help="model servers: serve this job's trained model or adapter."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="model servers: 'default', a model folder, a .gguf file or a cached hub id."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on; anything but loopback needs NOCODETUNE_API_TOKEN."),
    port: Optional[int] = typer.Option(None, "--port", "-p", help="Port (default: a free one)."),
    background: bool = typer.Option(False, "--background", "-b", help="Run detached, log to logs/<kind>/, return once healthy."),
    managed: bool = typer.Option(False, "--managed", hidden=True, help="Started by the server manager, which keeps the record."),
) -> None:
    """Start a server in the foreground (Ctrl-C stops it) or, with --background, detached."""
    ws = workspace_from(ctx)
    if kind is Kind.api and not managed:
        from nocodetune.api.app import prepare_workspace

        created = prepare_workspace(ws)  # the web UI starts on a new folder without `init` first
        if created is not None:
            console.print(f"created a new workspace at [bold]{escape(str(ws.root))}[/] (with a demo dataset and job)")
    if managed:  # a background child: the parent wrote the record and watches /health
        the_plan = manager.plan(ws, kind.value, job=job, model=model, host=host, port=None)
        _serve_in_process(ws, the_plan, port or 8000)
        return
    if background:
        record = manager.start(ws, kind.value, job=job, model=model, host=host, port=port, background=True)
        console.print(f"[bold green]started[/] {record.id}: {escape(record.serves)} at [bold]{record.url}[/] (pid {record.pid})")
        console.print(f"  log: {escape(str(record.log_path))}\n  stop: nocodetune server stop {record.id}")
        return

    def run(the_plan: ServerPlan, chosen: int) -> None:
        console.print(f"serving {escape(the_plan.serves)} at [bold]{url_for(the_plan.host, chosen)}[/] (Ctrl-C stops)")
        _serve_in_process(ws, the_plan, chosen)

    manager.start(ws, kind.value, job=job, model=model, host=host, port=port, background=False, run_foreground=run)


def _table(servers: list[ServerInfo]) -> Table:
    table = Table(title="AI servers")
    for column in ("id", "url"):
        table.add_column(column, no_wrap=True)
    for column in ("serves", "pid", "uptime", "health", "mode"):
        table.add_column(column)
    for s in servers:
        table.add_row(
            s.id,
            s.url,
            escape(s.serves),
            str(s.pid),
            _uptime(s.uptime_seconds),
            "[green]ok[/]" if s.healthy else "[red]not answering[/]",
            "background" if s.background else "foreground",
        )
    return table


@app.command("list")
def list_servers(ctx: typer.Context) -> None:
    """Running servers (servers whose process has gone are forgotten)."""
    servers = manager.list_servers(workspace_from(ctx))
    if not servers:
        console.print("no servers running; start one with `nocodetune server start api --background`")
        return
    console.print(_table(servers))


@app.command("status")
def status(ctx: typer.Context, server_id: str = typer.Argument(..., metavar="ID", help="Server id from `server list`.")) -> None:
    """One server's details and health."""
    info = manager.status(workspace_from(ctx), server_id)
    console.print(_table([info]))
    console.print(f"log: {escape(str(info.log_path))}")


@app.command("logs")
def logs(
    ctx: typer.Context,
    server_id: str = typer.Argument(..., metavar="ID"),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the server stops."),
    tail: int = typer.Option(200, "--tail", "-n", help="Lines of history to print first."),
) -> None:
    """Print a background server's log."""
    for line in manager.logs(workspace_from(ctx), server_id, tail=tail, follow=follow):
        console.print(escape(line), highlight=False, soft_wrap=True)


@app.command("stop")
def stop(
    ctx: typer.Context,
    server_id: Optional[str] = typer.Argument(None, metavar="[ID]"),
    all_: bool = typer.Option(False, "--all", help="Stop every server of this workspace."),
) -> None:
    """Stop a server (SIGTERM, then SIGKILL after 10 s)."""
    ws = workspace_from(ctx)
    if all_ == (server_id is not None):
        raise typer.BadParameter("give a server ID or --all (not both)")
    stopped = manager.stop_all(ws) if all_ else [manager.stop(ws, server_id or "")]
    if not stopped:
        console.print("no servers were running")
    for record in stopped:
        console.print(f"stopped {record.id} (pid {record.pid})")
