"""The UI's server side without a browser: page shells, Plotly from the wheel, the chat proxy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from fastapi.testclient import TestClient

from nocodetune.api.app import create_app
from nocodetune.errors import UnsafeNameError
from nocodetune.ui.routes import PAGES, server_base_url
from tests.live_server import serve_in_thread


@pytest.fixture
def ui_app(workspace_dir: Path) -> FastAPI:
    from nocodetune.jobs.bootstrap import init_workspace

    init_workspace(workspace_dir)
    return create_app(workspace_dir, routes=("ui",))


def test_pages_render_with_navigation_and_no_outside_assets(ui_app: FastAPI) -> None:
    client = TestClient(ui_app)
    for path, _template, _nav, title in PAGES:
        resp = client.get(path)
        assert resp.status_code == 200, path
        assert f"<title>{title} · NoCodeTune</title>" in resp.text
        assert 'aria-current="page"' in resp.text
        assert "http://" not in resp.text.replace('href="/', "") and "https://" not in resp.text  # nothing from a CDN
    detail = client.get("/ui/jobs/my_job")
    assert detail.status_code == 200 and 'data-job="my_job"' in detail.text
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/jobs"
    assert client.get("/ui/static/common.js").status_code == 200


def test_job_page_refuses_a_name_that_is_not_a_job_name(ui_app: FastAPI) -> None:
    resp = TestClient(ui_app).get("/ui/jobs/..%2Fetc")
    assert resp.status_code in (400, 404)


def test_plotly_comes_from_the_installed_wheel(ui_app: FastAPI) -> None:
    resp = TestClient(ui_app).get("/ui/vendor/plotly.min.js")
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("application/javascript")
    assert len(resp.content) > 1_000_000 and b"plotly" in resp.content[:2000].lower()


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        ({"url": "http://127.0.0.1:8123"}, "http://127.0.0.1:8123"),
        ({"url": "http://0.0.0.0:8123/"}, "http://127.0.0.1:8123"),
        ({"url": "http://localhost:9000/v1"}, "http://127.0.0.1:9000"),
        ({"host": "127.0.0.1", "port": 7000}, "http://127.0.0.1:7000"),
    ],
)
def test_proxy_targets_loopback(record: dict[str, Any], expected: str) -> None:
    assert server_base_url(record) == expected


@pytest.mark.parametrize("url", ["http://10.1.2.3:8000", "http://example.com:80", "file:///etc/passwd"])
def test_proxy_refuses_other_hosts(url: str) -> None:
    with pytest.raises(UnsafeNameError) as info:
        server_base_url({"url": url})
    assert info.value.field == "server"


@pytest.fixture
def fake_model_server() -> Iterator[str]:
    """A stand-in OpenAI-compatible server that streams three chunks."""

    upstream = FastAPI()

    @upstream.post("/v1/chat/completions")
    async def chat(body: dict[str, Any]) -> StreamingResponse:
        async def chunks() -> Any:
            for word in ["Hello", " from", f" {body['model']}"]:
                yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': word}}]})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(chunks(), media_type="text/event-stream")

    with serve_in_thread(upstream) as url:
        yield url


def test_proxy_streams_a_chat_reply_from_the_registered_server(ui_app: FastAPI, fake_model_server: str) -> None:
    # The proxy finds servers through the public REST route only; stand in for it here.
    records = {"m1": {"id": "m1", "kind": "model", "url": fake_model_server}, "far": {"id": "far", "url": "http://192.168.1.9:80"}}

    @ui_app.get("/api/servers/{server_id}")
    def get_server(server_id: str) -> dict[str, Any]:
        if server_id not in records:
            raise _not_found(server_id)
        return records[server_id]

    client = TestClient(ui_app)
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with client.stream("POST", "/ui/proxy/m1/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        text = "".join(resp.iter_text())
    words = [json.loads(line[5:])["choices"][0]["delta"]["content"] for line in text.splitlines() if line.startswith("data: {")]
    assert "".join(words) == "Hello from tiny"
    assert text.rstrip().endswith("data: [DONE]")

    far = client.post("/ui/proxy/far/v1/chat/completions", json=body)
    assert far.status_code == 400 and far.json()["field"] == "server"
    assert client.post("/ui/proxy/m1/v1/fine_tuning/jobs", json={}).status_code == 404
    missing = client.post("/ui/proxy/nope/v1/chat/completions", json=body)
    assert missing.status_code == 404 and "nope" in missing.json()["message"]


def _not_found(server_id: str) -> Exception:
    from nocodetune.errors import NotFoundError

    return NotFoundError(f"no server {server_id}")


def test_the_api_makes_a_new_or_empty_folder_a_workspace(tmp_path: Path) -> None:
    for folder in (tmp_path / "new", tmp_path / "empty"):
        if folder.name == "empty":
            folder.mkdir()
        with TestClient(create_app(folder)) as client:
            assert client.get("/ui/jobs").status_code == 200
            assert [d["name"] for d in client.get("/api/files").json()] == ["demo"]
            assert "demo_job" in [j["name"] for j in client.get("/api/jobs").json()["items"]]
        assert (folder / "jobs").is_dir() and (folder / "archive" / "lora_train").is_dir()


def test_the_api_refuses_a_folder_that_holds_other_files(tmp_path: Path) -> None:
    from nocodetune.api.app import prepare_workspace
    from nocodetune.errors import NocodetuneError
    from nocodetune.workspace import Workspace

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(NocodetuneError) as info:
        prepare_workspace(Workspace(tmp_path))
    assert str(tmp_path) in info.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing was created
