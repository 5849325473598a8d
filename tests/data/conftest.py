"""Fixtures for the dataset tests: an initialised workspace, its store, sample files, a live files server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from nocodetune.records.job import ResolvedJob
from nocodetune.records.schema import JobConfig
from nocodetune.data.models import DatasetVersionMeta
from nocodetune.data.store import DatasetStore
from nocodetune.workspace import Workspace
from tests.live_server import serve_in_thread

REVIEWS_CSV = 'review,label\n"great, works well",positive\nbroke after a day,negative\n'


@pytest.fixture
def ws(workspace_dir: Path) -> Workspace:
    workspace = Workspace(workspace_dir)
    workspace.create_layout()
    return workspace


@pytest.fixture
def store(ws: Workspace) -> DatasetStore:
    return DatasetStore(ws)


@pytest.fixture
def reviews_csv(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.csv"
    path.write_text(REVIEWS_CSV, encoding="utf-8")
    return path


def staging_dirs(ws: Workspace) -> list[str]:
    """Folders left in the staging area (.tmp/locks holds lock files and is expected)."""
    if not ws.tmp.is_dir():
        return []
    return [p.name for p in ws.tmp.iterdir() if p.is_dir() and p.name != "locks"]


def leftovers(ws: Workspace) -> list[str]:
    """Everything a refused add could have left: files under files/ and staging folders under .tmp/."""
    return [str(p.relative_to(ws.root)) for p in ws.files.rglob("*")] + staging_dirs(ws)


def fake_job(ws: Workspace, job: str, *metas: DatasetVersionMeta, store: DatasetStore | None = None) -> Path:
    """A job folder as job creation writes it: resolved.json naming the datasets, plus their snapshots."""
    paths = ws.job(job)
    paths.root.mkdir(parents=True)
    snapshots = []
    for meta in metas:
        if store is not None:
            store.snapshot_into(meta.name, meta.version, paths.files)
        snapshots.append(meta.snapshot(f"files/{meta.ref}/{meta.file}"))
    ResolvedJob(name=job, created_at=datetime.now(timezone.utc).isoformat(), config=JobConfig(), datasets=snapshots).write(paths.resolved_json)
    return paths.root


@pytest.fixture
def live_server(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The files routes served by uvicorn on 127.0.0.1 in a thread, with a 1 MiB upload limit."""
    from nocodetune.api.app import create_app

    monkeypatch.setenv("NOCODETUNE_MAX_UPLOAD_MB", "1")
    monkeypatch.delenv("NOCODETUNE_API_TOKEN", raising=False)
    with serve_in_thread(create_app(ws, routes=("files",))) as url:
        yield url
