"""`nocodetune job run|resume|cancel|logs` and `workspace reindex`, with the fake trainer as the training command."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from nocodetune.cli.main import app
from nocodetune.jobs.service import JobService
from tests.jobs.conftest import FAKE_TRAINER, make_job_folder, wait_for


@pytest.fixture
def cli(ws, monkeypatch):
    monkeypatch.setenv("NOCODETUNE_WORKSPACE", str(ws.root))

    def invoke(*args: str, steps: int = 3, sleep: float = 0.02):
        monkeypatch.setenv("NOCODETUNE_TRAINING_COMMAND", f"{{python}} {FAKE_TRAINER} {{job_dir}} --steps {steps} --sleep {sleep}")
        result = CliRunner().invoke(app, list(args))
        result.text = " ".join(result.output.split())  # Rich wraps long lines
        return result

    return invoke


def test_run_shows_progress_and_a_summary(cli, ws):
    make_job_folder(ws, "cli_job")
    result = cli("job", "run", "cli_job")
    assert result.exit_code == 0, result.text
    assert "Job cli_job succeeded" in result.text and "final training loss: 0.6667" in result.text
    assert "outputs/adapter" in result.text and "run-1.log" in result.text
    logs = cli("job", "logs", "cli_job")
    assert "fake trainer run 1 from step 0" in logs.text
    again = cli("job", "run", "cli_job")
    assert again.exit_code == 2 and "already succeeded" in again.text
    missing = cli("job", "run", "nope")
    assert missing.exit_code == 2 and "'nope' does not exist" in missing.text


def test_failed_run_exits_1_and_says_why(cli, ws, monkeypatch):
    make_job_folder(ws, "nan_job")
    monkeypatch.setenv("NOCODETUNE_TRAINING_COMMAND", f"{sys.executable} {FAKE_TRAINER} {{job_dir}} --steps 4 --fail")
    result = CliRunner().invoke(app, ["job", "run", "nan_job"])
    text = " ".join(result.output.split())
    assert result.exit_code == 1
    assert "loss became NaN" in text and "lower the learning rate" in text


def test_detach_then_cancel_then_resume(cli, ws):
    make_job_folder(ws, "bg")
    started = cli("job", "run", "bg", "--detach", steps=200, sleep=0.05)
    assert started.exit_code == 0 and "in the background" in started.text
    service = JobService(ws)
    wait_for(lambda: (service.get("bg").step or 0) >= 2)
    assert cli("job", "run", "bg").exit_code == 2  # its lock is held by the detached process
    cancelled = cli("job", "cancel", "bg")
    assert cancelled.exit_code == 0 and "is cancelled" in cancelled.text
    assert service.get("bg").status == "cancelled"
    resumed = cli("job", "resume", "bg", steps=6, sleep=0.01)
    assert resumed.exit_code == 0, resumed.text
    assert "resuming from" in resumed.text and service.get("bg").status == "succeeded"
    assert "fake trainer run 2" in cli("job", "logs", "bg").output
    assert "fake trainer run 1" in cli("job", "logs", "bg", "--run", "1").output


def test_workspace_reindex(cli, ws):
    make_job_folder(ws, "a")
    make_job_folder(ws, "b")
    result = cli("workspace", "reindex")
    assert result.exit_code == 0 and "2 jobs, 0 dataset versions" in result.text


def test_logs_follow_prints_until_the_job_ends(cli, ws):
    make_job_folder(ws, "tail_me")
    assert cli("job", "logs", "tail_me").text == "Job tail_me has not run yet."
    assert cli("job", "run", "tail_me", "--detach", steps=15, sleep=0.05).exit_code == 0
    followed = cli("job", "logs", "tail_me", "-f")
    assert followed.exit_code == 0
    assert "fake trainer run 1" in followed.text and followed.text.endswith("-- job tail_me is succeeded")
    assert cli("job", "logs", "tail_me", "--run", "9").exit_code == 2
