"""Fixtures for the job service tests: a workspace with hand-made job folders and a fake trainer."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from nocodetune import db
from nocodetune.records.job import ResolvedJob
from nocodetune.records.schema import JobConfig
from nocodetune.workspace import Workspace

FAKE_TRAINER = Path(__file__).with_name("fake_trainer.py")


def fake_command(*extra: str) -> Callable[[Path], list[str]]:
    """A CommandFactory running the fake trainer with `extra` arguments."""
    return lambda job_dir: [sys.executable, str(FAKE_TRAINER), str(job_dir), *extra]


def make_job_folder(ws: Workspace, name: str, *, base: str | None = "lora_train", parent: str | None = None) -> Path:
    """The minimum the service needs of a job: its folder and resolved.json."""
    paths = ws.job(name)
    paths.root.mkdir(parents=True)
    (paths.root / "job.yaml").write_text(f"base: {base}\n")
    resolved = ResolvedJob(name=name, created_at=time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), config=JobConfig(description=f"{name} job"))
    resolved.lineage.base = base
    resolved.lineage.parent = parent
    resolved.write(paths.resolved_json)
    return paths.root


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, every: float = 0.1) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def ws(workspace_dir: Path) -> Iterator[Workspace]:
    workspace = Workspace(workspace_dir)
    workspace.create_layout()
    yield workspace
    db.dispose_all()
