"""CLI: `nocodetune job run|resume|cancel|logs`, added to `job_cmd.app` by `register`.

Foreground runs hold the job's lock in this process's child and render a live progress
bar; `--detach` starts the job in its own session so it survives the terminal, recorded
in the registry for `job show`, `job logs -f`, `job cancel` and the API to find.
"""

from __future__ import annotations

import time
from typing import Optional

import typer
from rich.markup import escape

from nocodetune.cli.common import console, err_console, workspace_from
from nocodetune.errors import NocodetuneError

EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 130, "paused": 130}


def _fail(exc: NocodetuneError) -> typer.Exit:
    err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")
    return typer.Exit(2)


def _start(ctx: typer.Context, name: str, detach: bool, resume: bool) -> None:
    from nocodetune.cli.progress import RunProgress
    from nocodetune.jobs.service import JobService

    try:
        ws = workspace_from(ctx)
        service = JobService(ws)
        if detach:
            started = service.start_detached(name, resume=resume)
            if started.queued is not None:
                console.print(f"[bold yellow]Queued job {escape(name)}[/]: {_queued_text(started.queued)}. It starts in the background when its turn comes.")
            elif started.handle is not None:
                where = f"pid {started.handle.pid}" if started.handle.pid else f"Ray job {started.handle.ray.submission_id}" if started.handle.ray else "elsewhere"
                console.print(f"[bold green]Started job {escape(name)}[/] (run {started.handle.n}, {where}) in the background.")
            else:
                console.print(f"Job {escape(name)} is {service.get(name).status}.")
            console.print(f"Follow it: nocodetune job logs {escape(name)} -f   ·   stop it: nocodetune job cancel {escape(name)}")
            return

        def queued(where: object) -> None:
            console.print(f"[yellow]Queued[/]: {_queued_text(where)}; waiting (Ctrl-C leaves the queue).")

        with RunProgress(console, name) as progress:
            status = service.run_foreground(name, progress.on_event, resume=resume, on_queued=queued)
        job = service.get(name)
    except NocodetuneError as exc:
        raise _fail(exc) from None
    paths = ws.job(name)
    log_file = paths.run_log(job.current_run) if job.current_run else None
    progress.summary(status, str(paths.root), str(log_file) if log_file else None)
    raise typer.Exit(EXIT_CODES.get(status, 1))


def _queued_text(where: object) -> str:
    """'position 2, behind a; slots busy with b' from a jobs.queue.Position."""
    place, ahead, busy = getattr(where, "place", 1), getattr(where, "ahead", []), getattr(where, "busy", {})
    text = f"position {place}" + (f", behind {', '.join(ahead)}" if ahead else "")
    if busy:
        text += f"; the machine's slots are busy with {', '.join(sorted(set(busy.values())))}"
    return escape(text)


def run(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Job to run."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Start in the background and return at once."),
) -> None:
    """Train a job. Shows loss, tokens/s and ETA; Ctrl-C stops it gracefully (a checkpoint is saved)."""
    _start(ctx, name, detach, resume=False)


def resume(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A failed, cancelled or paused job."),
    detach: bool = typer.Option(False, "--detach", "-d", help="Start in the background and return at once."),
) -> None:
    """Run a failed, cancelled or paused job again, continuing from its last checkpoint."""
    _start(ctx, name, detach, resume=True)


def cancel(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A queued or running job."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the job has stopped."),
) -> None:
    """Stop a job: it saves a checkpoint and exits (killed if it takes longer than the grace period)."""
    _stop(ctx, name, wait, pause=False)


def pause(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="A queued or running job."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait until the job has stopped."),
) -> None:
    """Pause a job: like cancel (a checkpoint is saved), but it shows as paused until you resume it."""
    _stop(ctx, name, wait, pause=True)


def _stop(ctx: typer.Context, name: str, wait: bool, *, pause: bool) -> None:
    from nocodetune.jobs.service import JobService

    try:
        ws = workspace_from(ctx)
        service = JobService(ws)
        if wait:
            console.print(f"{'Pausing' if pause else 'Stopping'} {escape(name)} (saving a checkpoint; up to {service.cancel_grace_s:g}s)...")
        job = service.pause(name, wait=wait) if pause else service.cancel(name, wait=wait)
    except NocodetuneError as exc:
        raise _fail(exc) from None
    if job.status == "running":
        console.print(f"Asked job {escape(name)} to stop; `nocodetune job show {escape(name)}` shows when it has.")
    else:
        console.print(f"Job {escape(name)} is {job.status}. Resume it with: nocodetune job resume {escape(name)}")


def logs(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Job whose log to print."),
    follow: bool = typer.Option(False, "--follow", "-f", help="Keep printing new lines until the job stops."),
    tail: int = typer.Option(200, "--tail", "-n", help="Lines of the end of the log to print first (0: all)."),
    run_number: Optional[int] = typer.Option(None, "--run", help="Run number (default: the latest)."),
) -> None:
    """Print a run's log (stdout and stderr of the training process)."""
    from nocodetune.jobs.service import JobService

    try:
        ws = workspace_from(ctx)
        service = JobService(ws)
        job = service.get(name)
        paths = ws.job(name)
        number = run_number or job.current_run or (int(paths.run_logs()[-1].stem.split("-")[1]) if paths.run_logs() else None)
        if number is None:
            console.print(f"Job {escape(name)} has not run yet.")
            return
        path = paths.run_log(number)
        if not path.is_file():
            raise NocodetuneError(f"job {name!r} has no log for run {number}", field="run", file=str(path))
    except NocodetuneError as exc:
        raise _fail(exc) from None
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
        typer.echo("".join(lines[-tail:] if tail else lines), nl=False)
        if not follow:
            return
        try:
            while True:
                chunk = fh.read()
                if chunk:
                    typer.echo(chunk, nl=False)
                elif service.get(name).status not in ("running", "queued") or (job.current_run or 0) > number:
                    typer.echo(fh.read(), nl=False)
                    break
                else:
                    time.sleep(0.5)
        except KeyboardInterrupt:
            pass
    console.print(f"[dim]-- job {escape(name)} is {service.get(name).status}[/]")


def register(app: typer.Typer) -> None:
    """Add run/resume/cancel/pause/logs to the `job` command group (once)."""
    if getattr(app, "_nocodetune_run_commands", False):
        return
    app.command("run")(run)
    app.command("resume")(resume)
    app.command("cancel")(cancel)
    app.command("pause")(pause)
    app.command("logs")(logs)
    app._nocodetune_run_commands = True  # type: ignore[attr-defined]
