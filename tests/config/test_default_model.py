"""Validation against the real embedded default model and the shipped demo assets (slow)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from nocodetune.cli.main import app
from nocodetune.records.job import ResolvedJob
from nocodetune.config.validate import preflight
from nocodetune.workspace import Workspace


@pytest.mark.slow
def test_shipped_workspace_validates_on_the_default_model(workspace_dir: Path) -> None:
    result = CliRunner().invoke(app, ["init", str(workspace_dir)])
    assert result.exit_code == 0, result.output
    ws = Workspace(workspace_dir)
    job = "demo_job"
    assert ws.job(job).resolved_json.is_file(), "init must create the shipped demo job"
    report = preflight(ws, ResolvedJob.read(ws.job(job).resolved_json), ws.job(job).root)
    assert report.ok, report.errors
    assert report.stats["model"] == "SmolLM2-135M-Instruct"
    assert 130e6 < report.stats["parameters"] < 140e6
    assert report.stats["tokens"]["max"] > 0 and report.stats["train_rows"] > 0
