"""No route reads a file outside the workspace, whatever links are planted in it.

Each case plants a symlink where the API reads a file (a run log, metrics, samples,
events, outputs, resolved.json, a dataset version, a server record's log) pointing to a
secret outside the workspace, and checks that the secret is never served.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nocodetune.api.app import create_app
from nocodetune.records import servers as server_records
from nocodetune.records.servers import ServerRecord
from nocodetune.workspace import Workspace

SECRET = "SECRET-CONTENT-do-not-serve"


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "passwd").write_text(f'{{"line": "{SECRET}"}}\n' * 3)
    return outside / "passwd"


@pytest.fixture
def client(api_ws: Workspace):
    with TestClient(create_app(api_ws), raise_server_exceptions=False) as c:
        yield c


def plant(link: Path, target: Path) -> None:
    link.parent.mkdir(parents=True, exist_ok=True)
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    elif link.exists() or link.is_symlink():
        link.unlink()
    link.symlink_to(target)


def assert_not_served(resp) -> None:
    assert SECRET not in resp.text, resp.text[:500]
    assert resp.status_code < 500, resp.text


JOB_FILES = {
    "run log (latest)": ("logs/run-1.log", "/api/jobs/demo_job/logs"),
    "run log (by number)": ("logs/run-1.log", "/api/jobs/demo_job/logs?run=1"),
    "metrics.json": ("outputs/metrics.json", "/api/jobs/demo_job/metrics"),
    "events.jsonl (metrics)": ("logs/events.jsonl", "/api/jobs/demo_job/metrics"),
    "events.jsonl (SSE)": ("logs/events.jsonl", "/api/jobs/demo_job/events"),
    "samples.jsonl": ("outputs/samples.jsonl", "/api/jobs/demo_job/samples"),
    "an output file": ("outputs/model/config.json", "/api/jobs/demo_job/outputs/model/config.json"),
}


@pytest.mark.parametrize("case", list(JOB_FILES), ids=list(JOB_FILES))
def test_job_files_planted_as_links_are_not_served(api_ws: Workspace, client: TestClient, secret: Path, case: str) -> None:
    relative, url = JOB_FILES[case]
    plant(api_ws.job("demo_job").root / relative, secret)
    resp = client.get(url)
    assert_not_served(resp)
    assert resp.status_code in (400, 404), resp.text


def test_outputs_listing_hides_links_that_leave_outputs(api_ws: Workspace, client: TestClient, secret: Path) -> None:
    outputs = api_ws.job("demo_job").outputs
    (outputs / "model").mkdir(parents=True)
    (outputs / "model" / "real.txt").write_text("inside")
    plant(outputs / "model" / "leak.txt", secret)
    plant(outputs / "linked_dir", secret.parent)
    resp = client.get("/api/jobs/demo_job/outputs")
    assert resp.status_code == 200
    listed = {f["path"]: f["size"] for f in resp.json()}
    assert listed == {"model/real.txt": 6}  # neither the link nor the size of its target
    assert_not_served(client.get("/api/jobs/demo_job/outputs/linked_dir/passwd"))


def test_an_outputs_folder_that_is_a_link_is_refused(api_ws: Workspace, client: TestClient, secret: Path) -> None:
    plant(api_ws.job("demo_job").outputs, secret.parent)
    assert_not_served(client.get("/api/jobs/demo_job/outputs"))
    assert_not_served(client.get("/api/jobs/demo_job/outputs/passwd"))


def test_a_resolved_json_link_is_refused(api_ws: Workspace, client: TestClient, tmp_path: Path) -> None:
    resolved = api_ws.job("demo_job").resolved_json
    outside = tmp_path / "resolved.json"
    data = json.loads(resolved.read_text())
    data["config"]["description"] = SECRET
    outside.write_text(json.dumps(data))
    plant(resolved, outside)
    resp = client.get("/api/jobs/demo_job")
    assert_not_served(resp)
    assert resp.status_code == 400


def test_a_job_folder_that_is_a_link_is_refused(api_ws: Workspace, client: TestClient, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere_job"
    shutil.copytree(api_ws.job("demo_job").root, elsewhere)
    (elsewhere / "logs").mkdir(exist_ok=True)
    (elsewhere / "logs" / "run-1.log").write_text(SECRET)
    plant(api_ws.jobs / "linked_job", elsewhere)
    assert_not_served(client.get("/api/jobs/linked_job/logs"))


@pytest.mark.parametrize("route", ["download", "preview"])
def test_dataset_versions_planted_as_links_are_not_served(api_ws: Workspace, client: TestClient, secret: Path, route: str) -> None:
    version = api_ws.dataset_dir("sums") / "v1"
    meta = json.loads((version / "meta.json").read_text())
    plant(version / meta["file"], secret)
    resp = client.get(f"/api/files/sums/versions/1/{route}")
    assert_not_served(resp)
    assert resp.status_code == 400


def test_a_server_record_cannot_point_its_log_outside(api_ws: Workspace, client: TestClient, secret: Path) -> None:
    import psutil

    record = ServerRecord(
        id="data-1", kind="data", pid=os.getpid(), pid_create_time=psutil.Process().create_time(), host="127.0.0.1",
        port=1, url="http://127.0.0.1:1", serves="planted", log_path=str(secret),
    )  # fmt: skip
    server_records.save(api_ws, record)
    try:
        resp = client.get("/api/servers/data-1/logs")
        assert_not_served(resp)
        assert resp.status_code == 400
    finally:
        server_records.remove(api_ws, record)
