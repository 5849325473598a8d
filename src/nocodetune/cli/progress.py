"""Rich rendering of a run's events: a progress bar with loss, tokens/s and ETA, then a summary.

Fed one `Event` at a time (it is the `on_event` of `JobService.run_foreground`), so it
shows exactly what the web UI shows from the same events.jsonl.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn

from nocodetune.records.events import Event


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-:--"
    seconds = int(max(0, seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class RunProgress:
    """A live progress bar for one run; use as a context manager and pass `on_event`."""

    def __init__(self, console: Console, job: str) -> None:
        self.console = console
        self.job = job
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("step {task.completed:.0f}/{task.total:.0f}"),
            TextColumn("loss [cyan]{task.fields[loss]}"),
            TextColumn("{task.fields[speed]} tok/s"),
            TextColumn("ETA {task.fields[eta]}"),
            console=console,
            transient=False,
        )
        self.task: TaskID | None = None
        self.started = time.monotonic()
        self.last_loss: float | None = None
        self.last_eval: float | None = None
        self.final: Event | None = None

    def __enter__(self) -> "RunProgress":
        self.progress.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.progress.stop()

    def _ensure_task(self, total: float | None) -> TaskID:
        if self.task is None:
            self.task = self.progress.add_task(self.job, total=total or 1, loss="-", speed="-", eta="-:--")
        elif total:
            self.progress.update(self.task, total=total)
        return self.task

    def on_event(self, event: Event) -> None:
        data = event.data()
        if event.type == "started":
            resumed = f", resuming from {data['resumed_from']}" if data.get("resumed_from") else ""
            self.console.print(
                f"Training {escape(self.job)}: {data.get('method', '?')} on {data.get('num_train_examples', '?')} examples "
                f"({data.get('num_eval_examples', 0)} held out){escape(resumed)}"
            )
            self._ensure_task(data.get("total_steps"))
        elif event.type == "message":
            self.console.print(f"[dim]{escape(str(data.get('stage', '')))}: {escape(str(data.get('text', '')))}[/]")
        elif event.type == "log":
            task = self._ensure_task(data.get("total_steps"))
            self.last_loss = data.get("loss", self.last_loss)
            speed = data.get("tokens_per_second")
            self.progress.update(
                task,
                completed=data.get("step", 0),
                loss=f"{self.last_loss:.4f}" if self.last_loss is not None else "-",
                speed=f"{speed:,.0f}" if speed is not None else "-",
                eta=format_seconds(data.get("eta_seconds")),
            )
        elif event.type == "eval":
            self.last_eval = data.get("eval_loss")
            ppl = data.get("perplexity")
            loss = f"{self.last_eval:.4f}" if isinstance(self.last_eval, (int, float)) else "-"
            self.console.print(f"eval at step {data.get('step')}: loss {loss}" + (f", perplexity {ppl:.2f}" if ppl else ""))
        elif event.type == "checkpoint":
            self.console.print(f"[dim]checkpoint at step {data.get('step')}: {escape(str(data.get('path')))}[/]")
        elif event.type in ("finished", "failed", "cancelled", "paused"):
            self.final = event
            if self.task is not None and event.type == "finished":
                self.progress.update(self.task, completed=self.progress.tasks[0].total, eta="0:00")

    def summary(self, status: str, job_dir: str, log_file: str | None) -> None:
        """What happened and where everything is."""
        elapsed = format_seconds(time.monotonic() - self.started)
        data = self.final.data() if self.final else {}
        color = {"succeeded": "green", "cancelled": "yellow", "paused": "yellow"}.get(status, "red")
        self.console.print(f"[bold {color}]Job {escape(self.job)} {status}[/] after {elapsed}")
        if self.last_loss is not None:
            self.console.print(f"  final training loss: {self.last_loss:.4f}" + (f"   eval loss: {self.last_eval:.4f}" if self.last_eval is not None else ""))
        if status == "succeeded":
            self.console.print(f"  model: {escape(str(data.get('model_path') or job_dir + '/outputs'))}")
            metrics = data.get("metrics") or {}
            before, after = metrics.get("heldout_preference_accuracy_before"), metrics.get("heldout_preference_accuracy_after")
            if isinstance(before, (int, float)) and isinstance(after, (int, float)):
                pairs = metrics.get("heldout_preference_pairs")
                self.console.print(f"  chosen answer preferred on held-out pairs: {before:.0%} before, {after:.0%} after" + (f" ({pairs} pairs)" if pairs else ""))
            self.console.print(f"  metrics: {escape(job_dir)}/outputs/metrics.json")
        elif status == "failed":
            self.console.print(f"  error: {escape(str(data.get('error', 'see the log')))}")
            if data.get("hint"):
                self.console.print(f"  hint: {escape(str(data['hint']))}")
            self.console.print(f"  resume with: nocodetune job resume {escape(self.job)}")
        elif status in ("cancelled", "paused"):
            if data.get("checkpoint"):
                self.console.print(f"  checkpoint: {escape(str(data['checkpoint']))}")
            self.console.print(f"  resume with: nocodetune job resume {escape(self.job)}")
        if log_file:
            self.console.print(f"  log: {escape(log_file)}   events: {escape(job_dir)}/logs/events.jsonl")
