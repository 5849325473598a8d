"""CLI: `nocodetune demo` — the whole product in one command.

Creates the workspace if needed, runs the shipped demo job (written dates → ISO dates on
the embedded SmolLM2-135M-Instruct) with a live progress bar, then prints the held-out
exact-match score before and after fine-tuning and where the model and logs are.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.markup import escape

from nocodetune.cli.common import console, err_console
from nocodetune.errors import NocodetuneError
from nocodetune.workspace import DEFAULT_DIRNAME, Workspace

EXIT_CODES = {"succeeded": 0, "failed": 1, "cancelled": 130}


def _workspace(ctx: typer.Context, path: Optional[Path]) -> Workspace:
    """--workspace / NOCODETUNE_WORKSPACE / an enclosing workspace, else ./ModelTrainingWorkspace."""
    root_obj = ctx.find_root().obj or {}
    explicit = path or root_obj.get("workspace")
    ws = Workspace.locate(explicit)
    return ws if explicit or ws.exists() else Workspace(Path.cwd() / DEFAULT_DIRNAME)


def _scores(job_dir: Path) -> dict[str, Any]:
    metrics = job_dir / "outputs" / "metrics.json"
    return json.loads(metrics.read_text(encoding="utf-8")) if metrics.is_file() else {}


def _print_result(job_dir: Path, metrics: dict[str, Any]) -> None:
    before, after = metrics.get("heldout_score_before"), metrics.get("heldout_score_after")
    if before is not None and after is not None:
        n = metrics.get("num_eval_examples")
        console.print(
            f"\n[bold]Held-out exact match[/] ({n} examples the model never trained on): "
            f"[red]{before:.0%}[/] before → [bold green]{after:.0%}[/] after fine-tuning"
        )
    samples = job_dir / "outputs" / "samples.jsonl"
    if samples.is_file():
        rows = [json.loads(line) for line in samples.read_text(encoding="utf-8").splitlines() if line.strip()]
        after_rows = [r for r in rows if r.get("stage") == "after"][:3]
        before_by_prompt = {r["prompt"]: r for r in rows if r.get("stage") == "before"}
        for r in after_rows:
            b = before_by_prompt.get(r["prompt"], {}).get("output", "")
            console.print(f"  [dim]{escape(r['prompt'])}[/]\n    before: {escape(b.strip()[:60])!s}\n    after:  {escape(r['output'].strip()[:60])}")
    console.print(f"\nModel:   {escape(str(job_dir / 'outputs'))}")
    console.print(f"Logs:    {escape(str(job_dir / 'logs'))}")
    console.print("Chat with it:  nocodetune server start model --job demo_job")


def demo(
    ctx: typer.Context,
    path: Optional[Path] = typer.Argument(None, help=f"Workspace to use or create (default: the current one, else ./{DEFAULT_DIRNAME}).", show_default=False),
) -> None:
    """Fine-tune the embedded model on a date-formatting task and show before/after scores (~5 min on a laptop CPU)."""
    from nocodetune.cli.progress import RunProgress
    from nocodetune.jobs.bootstrap import DEMO_JOB, init_workspace
    from nocodetune.jobs.service import JobService

    try:
        ws = _workspace(ctx, path)
        if not ws.exists() or not ws.job(DEMO_JOB).root.exists():
            console.print(f"Preparing workspace {escape(str(ws.root))} ...")
            result = init_workspace(ws.root)
            skipped = [s for s in result.skipped if DEMO_JOB in s or "demo" in s]
            if skipped:
                raise NocodetuneError(f"cannot set up the demo: {'; '.join(skipped)}")
        console.print(
            "[bold]Demo:[/] teaching SmolLM2-135M-Instruct to answer written dates in ISO format (YYYY-MM-DD).\n"
            "[dim]The first run converts the embedded GGUF model once (~20 s); later runs reuse it.[/]"
        )
        service = JobService(ws)
        if service.get(DEMO_JOB).status == "succeeded":  # already trained: show it rather than refuse
            paths = ws.job(DEMO_JOB)
            console.print(f"The demo job has already run in {escape(str(ws.root))}; its results:")
            _print_result(paths.root, _scores(paths.root))
            console.print(f"[dim]To train it again: nocodetune -w {escape(str(ws.root))} job clone {DEMO_JOB} NEW_NAME, then job run NEW_NAME[/]")
            return
        with RunProgress(console, DEMO_JOB) as progress:
            status = service.run_foreground(DEMO_JOB, progress.on_event)
        job = service.get(DEMO_JOB)
    except NocodetuneError as exc:
        err_console.print(f"[bold red]Error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    paths = ws.job(DEMO_JOB)
    log_file = paths.run_log(job.current_run) if getattr(job, "current_run", None) else None
    progress.summary(status, str(paths.root), str(log_file) if log_file else None)
    if status == "succeeded":
        _print_result(paths.root, _scores(paths.root))
    raise typer.Exit(EXIT_CODES.get(status, 1))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
