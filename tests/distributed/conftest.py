"""Multi-process and Ray tests: they run only inside a private network namespace (tests/netns.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from nocodetune import db
from nocodetune.records.events import read_events
from nocodetune.workspace import Workspace
from tests import netns
from tests.training.conftest import make_job, prompt_completion_rows

NETNS_ONLY = ("distributed", "ray")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if netns.inside():
        return
    skip = pytest.mark.skip(reason="runs inside a private network namespace only: python tests/netns.py -m 'distributed or ray'")
    for item in items:
        if any(item.get_closest_marker(m) for m in NETNS_ONLY):
            item.add_marker(skip)


@pytest.fixture
def ws(workspace_dir: Path) -> Iterator[Workspace]:
    workspace = Workspace(workspace_dir)
    workspace.create_layout()
    yield workspace
    db.dispose_all()


@pytest.fixture
def real_job(ws: Workspace, tiny_model_dir: Path) -> Callable[..., str]:
    """A job folder in the workspace training the tiny model (make_job's defaults, then `config`)."""

    def make(name: str, config: dict[str, Any] | None = None, rows: int = 24, model: Path | None = None) -> str:
        make_job(ws.jobs, name, prompt_completion_rows(rows), model or tiny_model_dir, config=config)
        return name

    return make


def events(ws: Workspace, name: str, kind: str | None = None) -> list[dict[str, Any]]:
    found, _ = read_events(ws.job(name).events)
    return [e.data() for e in found if kind is None or e.type == kind]


def wait_event(ws: Workspace, name: str, kind: str, timeout: float = 300, after: Callable[[dict[str, Any]], bool] = lambda _e: True) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events(ws, name, kind) if after(e)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no {kind} event for {name} within {timeout}s; last events: {events(ws, name)[-5:]}")


def process_tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def listening(pids: set[int]) -> list[tuple[str, int, int]]:
    """(address, port, pid) of every listening TCP socket held by `pids`."""
    out = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in pids and conn.laddr:
            out.append((conn.laddr.ip, conn.laddr.port, conn.pid))
    return out


def is_loopback(address: str) -> bool:
    return address in ("127.0.0.1", "::1", "::ffff:127.0.0.1") or address.startswith("127.")
