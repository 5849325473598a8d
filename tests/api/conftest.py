"""A live API on 127.0.0.1 (uvicorn in a thread, free port, stopped at teardown)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nocodetune import db
from nocodetune.api.app import create_app
from nocodetune.data.store import DatasetStore
from nocodetune.jobs.bootstrap import init_workspace
from nocodetune.jobs.service import JobService
from nocodetune.workspace import Workspace
from tests.jobs.conftest import fake_command
from tests.live_server import serve_in_thread

TINY_CSV = "prompt,completion\n" + "".join(f"What is {i} plus {i}?,{2 * i}\n" for i in range(24))


live_server = serve_in_thread  # used as a context manager by the tests


def read_sse(client: httpx.Client, url: str, timeout: float = 120) -> list[dict]:
    """Every SSE message of a stream until the server closes it: [{id, event, data}]."""
    import json

    messages, current = [], {}
    with client.stream("GET", url, timeout=timeout) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line:
                if "data" in current:
                    messages.append(current)
                current = {}
            elif line.startswith("id: "):
                current["id"] = int(line[4:])
            elif line.startswith("event: "):
                current["event"] = line[7:]
            elif line.startswith("data: "):
                current["data"] = json.loads(line[6:])
    return messages


@pytest.fixture
def api_ws(workspace_dir: Path) -> Iterator[Workspace]:
    """An initialised workspace (bases, demo dataset) with a small `sums` CSV dataset."""
    init_workspace(workspace_dir)
    ws = Workspace(workspace_dir)
    csv = ws.root.parent / "sums.csv"
    csv.write_text(TINY_CSV)
    DatasetStore(ws).add(csv, "sums")
    yield ws
    db.dispose_all()


@pytest.fixture
def fake_api(api_ws: Workspace) -> Iterator[tuple[str, JobService]]:
    """A live API whose jobs run the fake trainer (fast, scriptable)."""
    service = JobService(api_ws, command=fake_command("--steps", "6", "--sleep", "0.1"), poll_s=0.05, cancel_grace_s=10)
    with live_server(create_app(api_ws, ("jobs",), job_service=service)) as url:
        yield url, service
