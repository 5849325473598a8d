"""A workspace made by the first release opens unchanged.

tests/fixtures/workspace_v1 was written by the first release (commit 89fb961): `init`, a
CSV dataset, a job trained with the test trainer, a child job, a failed job, and that
release's registry. Its records have no format_version (they read as version 1), its
lineage names the parent by an absolute path that no longer exists (the workspace was
made elsewhere), and its registry was created by that release.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nocodetune.cli.main import app

FIXTURE = Path(__file__).parent / "fixtures" / "workspace_v1"


@pytest.fixture
def old_ws(tmp_path: Path) -> Path:
    target = tmp_path / "moved" / "OldWorkspace"
    shutil.copytree(FIXTURE, target)
    return target


def _cli(ws: Path, *args: str) -> str:
    result = CliRunner().invoke(app, ["--workspace", str(ws), *args])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_old_workspace_lists_jobs_and_datasets_with_their_statuses(old_ws: Path) -> None:
    listing = _cli(old_ws, "job", "list", "--json")
    import json

    statuses = {job["name"]: job["status"] for job in json.loads(listing)}
    assert statuses == {"demo_job": "created", "reviews_child": "created", "reviews_lora": "succeeded", "will_fail": "failed"}
    assert "reviews@1" in _cli(old_ws, "data", "show", "reviews@1") and "reviews" in _cli(old_ws, "data", "list")
    shown = _cli(old_ws, "job", "show", "reviews_child")
    assert "reviews_lora" in shown and "old release job" not in shown


def test_registry_rebuilt_from_old_records_loses_nothing(old_ws: Path) -> None:
    (old_ws / "nocodetune.db").unlink()
    import json

    _cli(old_ws, "workspace", "reindex")
    statuses = {job["name"]: job["status"] for job in json.loads(_cli(old_ws, "job", "list", "--json"))}
    assert statuses["reviews_lora"] == "succeeded" and statuses["will_fail"] == "failed"


def test_old_workspace_through_the_api(old_ws: Path) -> None:
    from nocodetune.api.app import create_app

    with TestClient(create_app(old_ws)) as client:
        jobs = {j["name"]: j for j in client.get("/api/jobs").json()["items"]}
        assert jobs["reviews_lora"]["status"] == "succeeded"
        detail = client.get("/api/jobs/reviews_child").json()
        assert detail["lineage"]["parent"] == "reviews_lora"
        assert client.get("/api/jobs/reviews_lora/metrics").status_code == 200
        files = client.get("/api/files").json()
        assert {d["name"] for d in files} >= {"demo", "reviews"}
        preview = client.get("/api/files/reviews/versions/1/preview").json()
        assert preview["total"] == 6 and preview["columns"] == ["review", "sentiment"]


def test_a_moved_workspace_finds_a_parent_by_name(old_ws: Path) -> None:
    from nocodetune.records.job import parent_paths, read_resolved
    from nocodetune.workspace import Workspace

    child = Workspace(old_ws).job("reviews_child")
    resolved = read_resolved(child)
    assert resolved.format_version == 1 and not Path(resolved.lineage.parent_dir or "").exists()
    parent = parent_paths(resolved, child.root)
    assert parent is not None and parent.root == Workspace(old_ws).job("reviews_lora").root
