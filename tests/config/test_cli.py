"""`nocodetune init` and `nocodetune job create|list|show|clone|delete` as a user runs them."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import CliRunner

from nocodetune.cli.main import app
from nocodetune.records.job import ResolvedJob
from nocodetune.jobs import bootstrap
from nocodetune.workspace import Workspace
from tests.config.conftest import job_folders


def _tree(root: Path) -> dict[str, str]:
    """Every file under root (but the registry, which SQLite may touch) with its hash."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith("nocodetune.db") and ".tmp" not in p.parts
    }


def test_init_creates_the_workspace_and_a_second_init_changes_nothing(ws: Workspace, cli: Callable[..., Any]) -> None:
    for part in ("archive/full_train/job.yaml", "archive/lora_train/job.yaml", "archive/qlora_train/job.yaml", "nocodetune.db"):
        assert (ws.root / part).is_file(), part
    assert (ws.dataset_dir("demo") / "v1").is_dir()
    demo = ResolvedJob.read(ws.job("demo_job").resolved_json)
    assert demo.config.dataset.ref == "demo@1" and demo.config.training.max_steps == 5

    (ws.archive / "lora_train" / "job.yaml").write_text("method: lora\ntraining:\n  learning_rate: 0.001\n")  # a user's edit
    before = _tree(ws.root)
    result = cli("init", str(ws.root))
    assert result.exit_code == 0, result.output
    assert "nothing changed" in result.text
    assert _tree(ws.root) == before


def test_init_default_path_and_summary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bootstrap, "DEMO_JOB_FILE", tmp_path / "absent.yaml")
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert Workspace(tmp_path / "ModelTrainingWorkspace").exists()
    assert "archive/lora_train created" in text and "Next steps" in text
    assert "jobs/demo_job skipped" in text


def test_init_restores_missing_parts_without_touching_others(ws: Workspace) -> None:
    (ws.archive / "full_train" / "job.yaml").write_text("method: full\n")
    (ws.archive / "qlora_train" / "job.yaml").unlink()
    (ws.archive / "qlora_train").rmdir()
    result = bootstrap.init_workspace(ws.root)
    assert result.created == ["archive/qlora_train"]
    assert (ws.archive / "full_train" / "job.yaml").read_text() == "method: full\n"


def test_create_list_show(ws: Workspace, dataset: str, cli: Callable[..., Any]) -> None:
    result = cli("job", "create", "j1", "--base", "full_train", "--dataset", dataset, "--set", "training.learning_rate=3e-5", "--set", "training.max_length=256")
    assert result.exit_code == 0, result.output
    assert "Created job j1" in result.text
    result = cli("job", "create", "j2", "--parent", "j1", "--set", "training.num_train_epochs=1", "--description", "second pass")
    assert result.exit_code == 0, result.output

    listing = cli("job", "list")
    assert listing.exit_code == 0, listing.output
    assert "j1 full_train - dates@1 created" in listing.text
    assert "j2 full_train j1 dates@1 created" in listing.text

    show = cli("job", "show", "j2")
    assert show.exit_code == 0, show.output
    assert "second pass" in show.text
    assert "training.learning_rate 3e-05 parent:j1" in show.text
    assert "training.num_train_epochs 1 job" in show.text
    assert "training.lr_scheduler_type cosine base:full_train" in show.text
    assert "training.seed" not in show.text  # schema defaults are hidden ...
    assert "training.seed 42 schema" in cli("job", "show", "j2", "--all").text  # ... unless asked


def test_create_errors_exit_2_with_a_clear_message(ws: Workspace, dataset: str, cli: Callable[..., Any]) -> None:
    result = cli("job", "create", "x", "--dataset", dataset, "--set", "training.learnin_rate=1e-4")
    assert result.exit_code == 2
    assert "unknown key training.learnin_rate (did you mean training.learning_rate?)" in result.text
    result = cli("job", "create", "x", "--dataset", dataset, "--set", "lora.r=many")
    assert result.exit_code == 2 and "lora.r = 'many'" in result.text
    result = cli("job", "create", "x", "--dataset", "dates@9")
    assert result.exit_code == 2 and "dates" in result.text
    result = cli("job", "create", "../x", "--dataset", dataset)
    assert result.exit_code == 2 and "invalid job name" in result.text
    assert "x" not in job_folders(ws)
    assert cli("job", "create", "x", "--dataset", dataset).exit_code == 0
    result = cli("job", "create", "x", "--dataset", dataset)
    assert result.exit_code == 2 and "already exists" in result.text


def test_clone_and_delete(ws: Workspace, dataset: str, cli: Callable[..., Any]) -> None:
    assert cli("job", "create", "a", "--dataset", dataset, "--set", "lora.r=4").exit_code == 0
    result = cli("job", "clone", "a", "b", "--set", "lora.r=32")
    assert result.exit_code == 0, result.output
    assert ResolvedJob.read(ws.job("b").resolved_json).config.lora.r == 32
    assert cli("job", "delete", "b", input="n\n").exit_code == 1  # declined
    assert ws.job("b").root.is_dir()
    result = cli("job", "delete", "b", "--yes")
    assert result.exit_code == 0 and not ws.job("b").root.exists()
    assert cli("job", "delete", "b", "--yes").exit_code == 2
