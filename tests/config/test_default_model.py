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


@pytest.mark.slow
def test_original_job_args_import_validate_and_run_on_the_default_model(ws: Workspace, cli, tmp_path: Path) -> None:
    """The original NoCodeTune's job list (a pythia parent/child pair) becomes jobs that train on SmolLM2."""
    import json

    from tests.config.test_legacy import ORIGINAL, _write_original
    from tests.training.conftest import events_of

    job_args = _write_original(tmp_path, ORIGINAL)
    imported = cli("job", "import", str(job_args), "--set", "training.max_steps=2", "--set", "output.num_samples=1", "--set", "training.max_length=64")
    assert imported.exit_code == 0, imported.output
    assert "'query_key_value' is named 'q_proj', 'k_proj', 'v_proj'" in imported.text
    for job in ("pythia_parent", "pythia_child"):
        assert cli("job", "validate", job).exit_code == 0
        ran = cli("job", "run", job)
        assert ran.exit_code == 0, ran.output
        finished = events_of(ws.job(job).root)[-1]
        assert finished["type"] == "finished" and finished["metrics"]["global_step"] == 2
    record = json.loads((ws.job("pythia_child").adapter_dir / "nocodetune_weights.json").read_text())
    assert [layer["job"] for layer in record["layers"]] == ["pythia_parent", "pythia_child"]
    assert record["base"]["name"] == "SmolLM2-135M-Instruct"
