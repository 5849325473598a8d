"""The models catalog (`/api/models`): what the Models page and the model pickers list.

Never touches the network: the Hugging Face cache is a folder made here, and the one
networked action (a hub download) is tested refused, then with the download stubbed.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nocodetune.api.app import create_app
from nocodetune.records.models import models_path


@pytest.fixture
def client(workspace_dir: Path) -> TestClient:
    from nocodetune.jobs.bootstrap import init_workspace

    init_workspace(workspace_dir)
    with TestClient(create_app(workspace_dir)) as c:
        yield c


@pytest.fixture
def hf_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A Hugging Face cache with one model repo and one repo that holds no model."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    for repo, files in {"models--acme--tiny-chat": ["config.json", "model.safetensors"], "models--acme--just-a-tokenizer": ["tokenizer.json"]}.items():
        snap = cache / repo / "snapshots" / "0123456789abcdef0123456789abcdef01234567"
        snap.mkdir(parents=True)
        (cache / repo / "refs").mkdir()
        (cache / repo / "refs" / "main").write_text("0123456789abcdef0123456789abcdef01234567")
        blobs = cache / repo / "blobs"
        blobs.mkdir()
        for i, name in enumerate(files):
            blob = blobs / f"blob{i}"
            blob.write_text("{}")
            (snap / name).symlink_to(blob)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def by_kind(catalog: dict, kind: str) -> list[dict]:
    return [m for m in catalog["models"] if m["kind"] == kind]


def test_catalog_lists_cache_registered_jobs_and_exports(client: TestClient, hf_cache: Path, tiny_model_dir: Path, workspace_dir: Path, tmp_path: Path) -> None:
    # a trained job (its adapter) and an exported GGUF of it
    outputs = workspace_dir / "jobs" / "demo_job" / "outputs"
    (outputs / "adapter").mkdir(parents=True)
    (outputs / "adapter" / "adapter_config.json").write_text("{}")
    (workspace_dir / "jobs" / "demo_job" / "exports").mkdir()
    (workspace_dir / "jobs" / "demo_job" / "exports" / "demo-q8_0.gguf").write_bytes(b"GGUF")

    resp = client.post("/api/models", json={"path": str(tiny_model_dir), "name": "Tiny"})
    assert resp.status_code == 201, resp.text
    registered = resp.json()
    assert registered["name"] == "Tiny" and registered["source"] == str(tiny_model_dir.resolve()) and registered["kind"] == "registered"
    gguf = tmp_path / "other.gguf"
    gguf.write_bytes(b"GGUF")
    assert client.post("/api/models", json={"path": str(gguf)}).json()["format"] == "gguf"

    catalog = client.get("/api/models").json()
    assert [m["name"] for m in by_kind(catalog, "hub_cache")] == ["acme/tiny-chat"]  # the tokenizer-only repo is no model
    assert by_kind(catalog, "hub_cache")[0]["source"] == "acme/tiny-chat"
    assert {m["name"] for m in by_kind(catalog, "registered")} == {"Tiny", "other"}
    job = by_kind(catalog, "job")
    assert [(m["job"], m["format"], m["source"]) for m in job] == [("demo_job", "adapter", None)]
    export = by_kind(catalog, "export")
    assert export[0]["source"].endswith("demo-q8_0.gguf") and export[0]["job"] == "demo_job"
    assert catalog["hub_downloads"] is False

    record = json.loads(models_path(client.app.state.workspace).read_text())
    assert record["format_version"] == 1 and len(record["models"]) == 2

    # unregistering forgets the record, never the files
    assert client.delete(f"/api/models/{registered['id']}").status_code == 204
    assert (tiny_model_dir / "config.json").is_file()
    assert "Tiny" not in {m["name"] for m in by_kind(client.get("/api/models").json(), "registered")}
    assert client.delete("/api/models/nope").status_code == 404


@pytest.mark.parametrize(
    ("path", "status"),
    [("relative/folder", 400), ("/no/such/model", 404), ("", 400)],
)
def test_register_refuses_what_is_not_a_model(client: TestClient, path: str, status: int) -> None:
    resp = client.post("/api/models", json={"path": path})
    assert resp.status_code == status and resp.json()["field"] == "path"
    assert not models_path(client.app.state.workspace).exists()  # nothing written


def test_register_refuses_a_folder_without_a_model_and_a_second_registration(client: TestClient, tmp_path: Path, tiny_model_dir: Path) -> None:
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    resp = client.post("/api/models", json={"path": str(empty)})
    assert resp.status_code == 404 and "config.json" in resp.json()["message"]
    assert client.post("/api/models", json={"path": str(tiny_model_dir)}).status_code == 201
    again = client.post("/api/models", json={"path": str(tiny_model_dir)})
    assert again.status_code == 409 and again.json()["field"] == "path"


def test_a_newer_models_record_is_refused_by_name(client: TestClient) -> None:
    models_path(client.app.state.workspace).write_text(json.dumps({"format_version": 99, "models": []}))
    resp = client.get("/api/models")
    assert resp.status_code == 422 and "models.json" in resp.json()["message"]


def test_hub_download_needs_the_opt_in(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = client.post("/api/models/download", json={"repo_id": "acme/tiny-chat"})
    assert refused.status_code == 403 and refused.json()["field"] == "repo_id"

    import huggingface_hub

    fetched: list[str] = []
    monkeypatch.setattr(huggingface_hub, "snapshot_download", lambda repo_id, revision=None: fetched.append(repo_id))
    monkeypatch.setenv("NOCODETUNE_ALLOW_HUB_DOWNLOADS", "1")
    assert client.post("/api/models/download", json={"repo_id": "not an id"}).status_code == 400
    started = client.post("/api/models/download", json={"repo_id": "acme/tiny-chat"})
    assert started.status_code == 202
    deadline = time.monotonic() + 10
    while client.get("/api/models").json()["downloads"][0]["status"] == "downloading":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert fetched == ["acme/tiny-chat"] and client.get("/api/models").json()["downloads"][0]["status"] == "done"
