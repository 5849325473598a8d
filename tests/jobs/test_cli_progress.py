"""The CLI's end-of-run summary says what a user checks first, for every kind of run."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from nocodetune.cli.progress import RunProgress
from nocodetune.records.events import Event


def summary_of(*events: Event, status: str) -> str:
    out = StringIO()
    progress = RunProgress(Console(file=out, width=200), "job")
    with progress:
        for event in events:
            progress.on_event(event)
    progress.summary(status, "/ws/jobs/job", "/ws/jobs/job/logs/run-1.log")
    return out.getvalue()


def test_a_preference_run_reports_held_out_preference_accuracy() -> None:
    metrics = {"heldout_preference_accuracy_before": 0.25, "heldout_preference_accuracy_after": 0.75, "heldout_preference_pairs": 8}
    text = summary_of(Event(type="finished", metrics=metrics, model_path="/ws/jobs/job/outputs/adapter"), status="succeeded")
    assert "chosen answer preferred on held-out pairs: 25% before, 75% after (8 pairs)" in text


def test_an_sft_run_says_nothing_about_preferences() -> None:
    text = summary_of(Event(type="finished", metrics={"train_loss": 1.0}, model_path="/m"), status="succeeded")
    assert "preferred" not in text and "model: /m" in text


def test_a_paused_run_names_its_checkpoint_and_how_to_resume() -> None:
    text = summary_of(Event(type="paused", step=3, checkpoint="/ws/jobs/job/outputs/checkpoints/checkpoint-3"), status="paused")
    assert "Job job paused" in text and "checkpoint-3" in text and "nocodetune job resume job" in text
