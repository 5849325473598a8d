"""A full disk while saving a checkpoint or the final model: nothing half-written looks complete, and the
failed event says what happened. Uses tiny tmpfs mounts (root only; skipped with the reason otherwise)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from nocodetune.training.outputs import last_complete_checkpoint
from tests.training.conftest import events_of, make_job, prompt_completion_rows, run_training


@contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(folder: Path, leave: int) -> None:
    """Leave about `leave` bytes free on the filesystem of `folder`."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    (folder / ".filler").write_bytes(b"\0" * max(free - leave, 0))


def failed_event(job: Path) -> dict:
    events = events_of(job)
    assert events and events[-1]["type"] == "failed", events[-3:]
    return events[-1]


@pytest.fixture
def job(tmp_path: Path, tiny_model_dir: Path) -> Path:
    return make_job(tmp_path / "jobs", "disk_job", prompt_completion_rows(), tiny_model_dir, config={"training": {"max_steps": 4, "save_steps": 2}})


def test_full_disk_during_a_checkpoint_save(job: Path) -> None:
    with tmpfs(job / "outputs" / "checkpoints", "24k") as checkpoints:
        result = run_training(job)
        assert result.returncode == 1, result.stderr[-2000:]
        event = failed_event(job)
        assert event["kind"] == "disk"
        assert "no space left on device while saving checkpoint-2" in event["error"], event
        assert not [p.name for p in checkpoints.iterdir() if p.name.startswith("checkpoint-")]  # no partial checkpoint left
        assert last_complete_checkpoint(checkpoints) is None
    assert not (job / "outputs" / "adapter").exists()


def test_full_disk_during_the_final_save(job: Path) -> None:
    with tmpfs(job / "outputs", "4m") as outputs, tmpfs(outputs / "checkpoints", "64m"):
        fill(outputs, leave=16 * 1024)
        result = run_training(job)
        assert result.returncode == 1, result.stderr[-2000:]
        event = failed_event(job)
        assert event["kind"] == "disk"
        assert "no space left on device while saving the model to outputs/adapter" in event["error"], event
        assert not (outputs / "adapter").exists()  # no folder that looks like a finished model
        assert not [p.name for p in outputs.iterdir() if p.name.startswith(".adapter-")]  # staging removed
        assert last_complete_checkpoint(outputs / "checkpoints")  # training itself is kept: a resume can save it


def test_a_partial_checkpoint_is_never_resumed_from(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    for step, complete in ((2, True), (4, True), (6, False)):
        (folder / f"checkpoint-{step}").mkdir(parents=True)
        if complete:
            (folder / f"checkpoint-{step}" / "trainer_state.json").write_text("{}")
    assert last_complete_checkpoint(folder) == str(folder / "checkpoint-4")
