"""The model-server pool (start once, stop when idle, retry after a failure) and the error
mapping (which answers the OpenAI SDK retries), without starting real servers."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError

from nocodetune.api.openai.errors import OpenAIError, render_error
from nocodetune.errors import ConflictError, DataError, NocodetuneError, NotFoundError
from nocodetune.jobs.openai_jobs import RefusedRequest
from nocodetune.processes import create_time
from nocodetune.records.servers import ServerRecord
from nocodetune.servers import on_demand
from nocodetune.servers.on_demand import ModelServerPool, ServerFailed, ServerStarting
from nocodetune.workspace import Workspace
from tests.jobs.conftest import wait_for


class FakeStarts:
    """Stands in for manager.start: records calls, can block or fail; 'servers' are this process."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.fail: Exception | None = None

    def __call__(self, ws: Workspace, kind: str, **kw: Any) -> ServerRecord:
        self.calls.append(kw)
        self.gate.wait(30)
        if self.fail is not None:
            raise self.fail
        n = len(self.calls)
        return ServerRecord(id=f"model-{n}", kind="model", pid=os.getpid(), pid_create_time=create_time(os.getpid()) or 0.0,
                            host="127.0.0.1", port=1000 + n, url=f"http://127.0.0.1:{1000 + n}", serves="test", job=kw.get("job"))


@pytest.fixture
def pool_parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Workspace, FakeStarts, list[str]]:
    ws = Workspace(tmp_path / "ws")
    ws.create_layout()
    stopped: list[str] = []
    monkeypatch.setattr(on_demand.manager, "list_servers", lambda ws, check_health=False: [])
    monkeypatch.setattr(on_demand, "_stop", lambda ws, record: stopped.append(record.id))
    monkeypatch.setattr(on_demand, "served_name", lambda record, key: key[1])
    return ws, FakeStarts(), stopped


def test_concurrent_first_requests_start_one_server(pool_parts: tuple[Workspace, FakeStarts, list[str]]) -> None:
    ws, starts, _ = pool_parts
    starts.gate.clear()
    pool = ModelServerPool(ws, idle_s=600, start=starts)
    leases: list[Any] = []
    threads = [threading.Thread(target=lambda: leases.append(pool.acquire(("job", "j1")))) for _ in range(4)]
    for t in threads:
        t.start()
    wait_for(lambda: starts.calls)
    starts.gate.set()
    for t in threads:
        t.join(30)
    assert len(starts.calls) == 1 and starts.calls[0]["job"] == "j1" and starts.calls[0]["background"] is True
    assert {lease.url for lease in leases} == {"http://127.0.0.1:1001"} and len(leases) == 4
    pool.close()


def test_an_idle_server_stops_and_the_next_request_starts_another(pool_parts: tuple[Workspace, FakeStarts, list[str]]) -> None:
    ws, starts, stopped = pool_parts
    pool = ModelServerPool(ws, idle_s=0.5, start=starts)
    lease = pool.acquire(("job", "j1"))
    time.sleep(1.0)
    assert pool.reap() == [] and stopped == []  # in use: never stopped under a request
    pool.release(lease)
    wait_for(lambda: stopped == ["model-1"], timeout=10)  # the reaper thread stops it once idle
    assert pool.running() == {}
    assert pool.acquire(("job", "j1")).url == "http://127.0.0.1:1002" and len(starts.calls) == 2
    pool.close()
    assert stopped == ["model-1", "model-2"]  # close stops what the pool started


def test_a_failed_start_is_reported_and_retried_by_the_next_request(pool_parts: tuple[Workspace, FakeStarts, list[str]]) -> None:
    ws, starts, _ = pool_parts
    starts.fail = NocodetuneError("the model server did not start: the process exited with code 2", hint="last lines of its log: ...")
    pool = ModelServerPool(ws, idle_s=600, start=starts)
    with pytest.raises(ServerFailed, match="exited with code 2"):
        pool.acquire(("job", "j1"))
    starts.fail = None
    assert pool.acquire(("job", "j1")).url.startswith("http://127.0.0.1:")
    assert len(starts.calls) == 2
    pool.close()


def test_a_slow_start_answers_starting_instead_of_hanging(pool_parts: tuple[Workspace, FakeStarts, list[str]]) -> None:
    ws, starts, _ = pool_parts
    starts.gate.clear()
    pool = ModelServerPool(ws, idle_s=600, start_wait_s=0.2, start=starts)
    with pytest.raises(ServerStarting) as err:
        pool.acquire(("model", "default"))
    assert err.value.retry_after > 0
    starts.gate.set()
    assert pool.acquire(("model", "default")).served_name == "default"
    assert len(starts.calls) == 1 and starts.calls[0]["model"] == "default"  # the waiting request did not start a second one
    pool.close()


@pytest.mark.parametrize(
    ("exc", "status", "permanent", "retry_after"),
    [
        (RefusedRequest("bad", param="seed", code="invalid_value"), 400, True, None),
        (DataError("bad rows", field="dataset.columns.messages"), 400, True, None),
        (NotFoundError("no such job", field="fine_tuning_job_id"), 404, True, None),
        (ConflictError("dataset busy"), 409, False, "2"),
        (ServerStarting("loading", retry_after=10), 503, False, "10"),
        (ServerFailed("broken model"), 500, True, None),
        (OpenAIError(401, "no key", code="invalid_api_key"), 401, True, None),
        (RuntimeError("a bug"), 500, False, None),
    ],
)
def test_errors_tell_the_sdk_whether_to_retry(exc: Exception, status: int, permanent: bool, retry_after: str | None) -> None:
    import json

    response = render_error(exc)
    body = json.loads(bytes(response.body))
    assert response.status_code == status and set(body["error"]) == {"message", "type", "param", "code"}
    assert (response.headers.get("x-should-retry") == "false") is permanent
    assert response.headers.get("retry-after") == retry_after
    if isinstance(exc, DataError):
        assert body["error"]["param"] == "training_file"  # NoCodeTune's field, as the OpenAI request field to change


def test_validation_errors_name_the_request_field() -> None:
    import json

    exc = RequestValidationError([{"type": "value_error", "loc": ("body", "hyperparameters", "n_epochs"), "msg": "Value error, n_epochs must be 'auto' or ...", "input": 0}])
    body = json.loads(bytes(render_error(exc).body))["error"]
    assert body["param"] == "hyperparameters.n_epochs" and body["message"].startswith("n_epochs must be")


def test_the_sdk_retries_while_a_model_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chat request that finds its model still loading gets 503 + Retry-After, which the SDK retries."""
    import openai

    from nocodetune.api.openai import OpenAIOptions
    from nocodetune.jobs.bootstrap import init_workspace
    from tests.openai.conftest import openai_api, sdk

    if "SmolLM2-135M-Instruct" not in _listed_bases():
        pytest.skip("the embedded default model is not installed")
    loading = threading.Event()
    monkeypatch.setattr(on_demand.manager, "start", lambda *a, **kw: loading.wait(60) and None)  # never ready during the test
    init_workspace(tmp_path / "ws")
    ws = Workspace(tmp_path / "ws")
    with openai_api(ws, options=OpenAIOptions(start_wait_s=0.2)) as (url, _, counts):
        with pytest.raises(openai.InternalServerError) as err:
            sdk(url, max_retries=2).chat.completions.create(model="SmolLM2-135M-Instruct", messages=[{"role": "user", "content": "hi"}])
        assert err.value.status_code == 503 and err.value.response.headers["retry-after"] == "1"
        assert err.value.body["code"] == "model_loading"  # type: ignore[index]
        assert counts[("POST", "/v1/chat/completions")] == 3  # the first try and the SDK's two retries
    loading.set()


def _listed_bases() -> list[str]:
    from nocodetune.model_source import DEFAULT_MODEL_NAME, default_gguf_path

    return [DEFAULT_MODEL_NAME] if default_gguf_path() is not None else []
