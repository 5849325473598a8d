"""Every error is a message: inputs that raise from deep inside libraries, through the CLI and the API.

The CLI answers one `Error:` line (plus a hint) and never a traceback; the API answers
its JSON error shape, with a 500 for a bug (whose traceback goes to the server log).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient

from nocodetune.api.app import create_app
from nocodetune.api.errors import openai_shape, register_error_shape
from nocodetune.workspace import Workspace

HUGE_INT = "9" * 5000  # past Python's int-string limit (4300 digits)
DEEP_LIST = "[" * 50_000 + "]" * 50_000  # past the recursion limit of json and yaml


def assert_one_message(code: int, err: str, *, expect_code: int = 2, mentions: str | None = None) -> None:
    assert code == expect_code, err
    assert "Traceback" not in err and 'File "' not in err, err
    assert err.lstrip().startswith("Error:"), err
    if mentions:
        assert mentions in " ".join(err.split()), err


def corrupt(ws: Workspace, job: str = "demo_job") -> Path:
    path = ws.job(job).resolved_json
    path.write_text('{"name": "demo_job", "config": {', encoding="utf-8")
    return path


# -- CLI -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "mentions"),
    [(f"training.seed={HUGE_INT}", "training.seed"), (f"training.seed={'[' * 3000}{']' * 3000}", "training.seed"), (f"training.max_steps={10**29}", "training.max_steps")],
    ids=["5000-digit-int", "deep-yaml", "max-steps-1e29"],
)
def test_cli_set_values_that_break_parsers_name_the_key(api_ws: Workspace, cli, value: str, mentions: str) -> None:
    code, _, err = cli("--workspace", str(api_ws.root), "job", "create", "hostile", "-d", "sums", "--set", value)
    assert_one_message(code, err, mentions=mentions)
    assert not api_ws.job("hostile").root.exists()


@pytest.mark.parametrize("command", [["job", "show"], ["job", "validate"], ["job", "run"], ["job", "run", "--detach"]], ids=" ".join)
def test_cli_refuses_a_damaged_resolved_json_naming_it_before_spawning(api_ws: Workspace, cli, command: list[str]) -> None:
    corrupt(api_ws)
    code, _, err = cli("--workspace", str(api_ws.root), *command, "demo_job")
    assert_one_message(code, err, mentions="jobs/demo_job/resolved.json")
    logs = api_ws.job("demo_job").logs
    assert not list(logs.glob("run-*")) if logs.is_dir() else True  # no training process was started


def test_cli_deeply_nested_dataset_is_a_message(api_ws: Workspace, cli, tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP_LIST)
    code, _, err = cli("--workspace", str(api_ws.root), "data", "add", str(deep), "--name", "deep")
    assert code in (2, 70), err  # a refusal (2) or, until the reader names it, the one-line bug report (70)
    assert_one_message(code, err, expect_code=code)
    assert not (api_ws.files / "deep").exists()


def test_cli_bug_is_one_line_and_the_traceback_is_saved(api_ws: Workspace, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    from nocodetune.jobs.service import JobService

    def broken(*_a, **_k):
        raise KeyError("simulated bug deep inside")

    monkeypatch.setattr(JobService, "list", broken)
    code, _, err = cli("--workspace", str(api_ws.root), "job", "list")
    assert_one_message(code, err, expect_code=70, mentions="unexpected KeyError")
    assert len([line for line in err.splitlines() if line.strip()]) <= 3  # one line, wrapped by the terminal width at most
    saved = Path(" ".join(err.split()).split("the traceback is in ")[1].rstrip(")"))
    text = saved.read_text()
    assert "Traceback" in text and "simulated bug deep inside" in text and "job list" in text


# -- API -------------------------------------------------------------------------------


@pytest.fixture
def client(api_ws: Workspace):
    with TestClient(create_app(api_ws), raise_server_exceptions=False) as c:
        yield c


def assert_shape(resp, status: int, *, field: str | None = None, mentions: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body
    if field is not None:
        assert body.get("field") == field, body
    if mentions is not None:
        assert mentions in body["message"] or mentions in str(body.get("file")), body
    return body


def test_api_deep_json_body_is_a_json_error(client: TestClient) -> None:
    for url in ("/api/jobs", "/api/jobs/validate"):
        resp = client.post(url, content=DEEP_LIST, headers={"content-type": "application/json"})
        assert 400 <= resp.status_code < 500
        assert_shape(resp, resp.status_code)


def test_api_out_of_range_numbers_name_the_field(client: TestClient, api_ws: Workspace) -> None:
    huge = '{"name": "hostile", "dataset": "sums@1", "set": {"training.seed": ' + HUGE_INT + "}}"
    resp = client.post("/api/jobs", content=huge, headers={"content-type": "application/json"})
    assert 400 <= resp.status_code < 500 and resp.json()["message"]
    resp = client.post("/api/jobs", json={"name": "hostile", "dataset": "sums@1", "set": {"training.max_steps": 10**29}})
    assert_shape(resp, 422, field="training.max_steps")
    assert not api_ws.job("hostile").root.exists()


@pytest.mark.parametrize("path", ["a%00b", "%00", "checkpoints/%00/x"])
def test_api_nul_bytes_in_path_params(client: TestClient, path: str) -> None:
    assert_shape(client.get(f"/api/jobs/demo_job/outputs/{path}"), 400)


def test_api_damaged_resolved_json_is_named_and_nothing_runs(client: TestClient, api_ws: Workspace) -> None:
    corrupt(api_ws)
    for method, url in (("GET", "/api/jobs/demo_job"), ("POST", "/api/jobs/demo_job/run"), ("POST", "/api/jobs/demo_job/validate")):
        assert_shape(client.request(method, url), 422, mentions="jobs/demo_job/resolved.json")
    assert not list(api_ws.job("demo_job").logs.glob("run-*")) if api_ws.job("demo_job").logs.is_dir() else True


def test_api_a_broken_base_is_reported_and_the_others_served(client: TestClient, api_ws: Workspace) -> None:
    broken = api_ws.archive / "broken_base"
    broken.mkdir()
    (broken / "job.yaml").write_text("training: [\n")
    resp = client.get("/api/bases")
    assert resp.status_code == 200, resp.text
    bases = {b["name"]: b for b in resp.json()}
    assert bases["broken_base"]["error"]["file"] == "archive/broken_base/job.yaml"
    assert bases["lora_train"]["error"] is None and bases["lora_train"]["config"]["method"] == "lora"


def test_api_bug_is_a_json_500_and_a_logged_traceback(client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from nocodetune.api import jobs_views

    def broken(*_a, **_k):
        raise RuntimeError("simulated bug with /secret/path")

    monkeypatch.setattr(jobs_views, "samples", broken)
    with caplog.at_level(logging.ERROR, logger="nocodetune.api"):
        resp = client.get("/api/jobs/demo_job/samples")
    body = assert_shape(resp, 500)
    assert body["error"] == "InternalError" and "/secret/path" not in resp.text  # the message stays in the log
    ref = body["hint"].rsplit(" ", 1)[-1]
    [record] = [r for r in caplog.records if ref in r.getMessage()]
    assert record.exc_info and "simulated bug" in str(record.exc_info[1])


def test_405_lists_every_allowed_method(client: TestClient) -> None:
    resp = client.put("/api/jobs")
    assert_shape(resp, 405)
    assert resp.headers["allow"] == "GET, POST"
    assert client.patch("/api/files/sums").headers["allow"] == "GET, DELETE"


def test_error_shape_is_chosen_by_prefix() -> None:
    """A /v1 router registered with OpenAI's shape answers every kind of error in it; /api keeps the project's."""
    app = FastAPI()
    from nocodetune.api.errors import install_error_handlers
    from nocodetune.errors import NotFoundError

    install_error_handlers(app)
    register_error_shape(app, "/v1", openai_shape)
    v1 = APIRouter()

    @v1.get("/models/{name}")
    def model(name: str, n: int = 1) -> dict:
        if name == "bug":
            raise ZeroDivisionError("x")
        raise NotFoundError(f"no model {name!r}", field="model")

    app.include_router(v1, prefix="/v1")
    with TestClient(app, raise_server_exceptions=False) as c:
        for url, status in (("/v1/models/x", 404), ("/v1/models/x?n=abc", 422), ("/v1/nothing", 404), ("/v1/models/bug", 500)):
            resp = c.get(url)
            assert resp.status_code == status, url
            error = resp.json()["error"]
            assert set(error) == {"message", "type", "param", "code"}, url
        assert c.get("/v1/models/x").json()["error"]["param"] == "model"
        assert c.get("/v1/models/x").headers["x-should-retry"] == "false"
        assert c.get("/api/nothing").json()["error"] == "HTTPError"  # other prefixes keep the project's shape
        assert json.loads(c.get("/v1/models/bug").text)["error"]["type"] == "server_error"
