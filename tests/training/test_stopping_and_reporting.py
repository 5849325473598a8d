"""Early stopping on eval loss (reported as the reason the run ended), TensorBoard logs under
the job's logs/, and W&B only when the user has set it up (never contacted in tests)."""

from __future__ import annotations

import importlib.util
import json

from tests.training.conftest import events_of, run_training


def test_eval_loss_that_stops_improving_ends_the_run_early_and_says_so(job_factory):
    # A learning rate far too small to change a float32 output: the eval loss stays exactly where it was.
    job = job_factory("early", config={"training": {
        "max_steps": 30, "learning_rate": 1e-12, "eval_split": 0.25, "eval_steps": 1, "early_stopping_patience": 2, "logging_steps": 1,
    }})
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-3000:]
    events = events_of(job)
    evals = [e["step"] for e in events if e["type"] == "eval"]
    assert evals == [1, 2, 3]  # best at 1, then two evaluations without improvement
    finished = events[-1]
    assert finished["type"] == "finished" and finished["stop_reason"] == "early_stopping"
    metrics = json.loads((job / "outputs" / "metrics.json").read_text())
    assert metrics["stop_reason"] == "early_stopping" and metrics["global_step"] == 3 and metrics["best_step"] == 1
    checkpoints = {p.name for p in (job / "outputs" / "checkpoints").iterdir()}
    assert "checkpoint-1" in checkpoints  # a checkpoint at every evaluation, the best one kept


def test_tensorboard_logs_land_in_the_jobs_logs_folder(job_factory):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = job_factory("tb", config={"training": {"max_steps": 4, "logging_steps": 1, "report_to": ["tensorboard"], "early_stopping_patience": 5}})
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-3000:]
    assert events_of(job)[-1]["stop_reason"] == "max_steps"  # early stopping was on, and never ran out of patience
    folder = job / "logs" / "tensorboard"
    assert list(folder.glob("events.out.tfevents.*"))
    board = EventAccumulator(str(folder))
    board.Reload()
    assert [s.step for s in board.Scalars("train/loss")] == [1, 2, 3, 4]
    assert not (job / "outputs" / "checkpoints" / "runs").exists()  # not the Trainer's default place


def test_wandb_that_is_not_set_up_fails_at_once_naming_report_to(job_factory):
    job = job_factory("wandb", config={"training": {"report_to": ["wandb"]}})
    result = run_training(job)
    assert result.returncode == 1
    events = events_of(job)
    failed = events[-1]
    assert failed["type"] == "failed" and failed["kind"] == "config" and failed["field"] == "training.report_to"
    assert "wandb" in failed["error"]
    assert not any(e["type"] == "message" and e["stage"] == "loading model" for e in events)


def test_wandb_needs_the_package_and_a_mode_the_user_chose(monkeypatch):
    from nocodetune.training import reporting

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    assert "not installed" in (reporting.wandb_problem({"WANDB_MODE": "online"}) or "")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "wandb" else real(name, *a))
    assert "not configured" in (reporting.wandb_problem({}) or "")
    assert "not configured" in (reporting.wandb_problem({"WANDB_MODE": "disabled"}) or "")  # the network policy's default
    assert reporting.wandb_problem({"WANDB_MODE": "offline"}) is None
