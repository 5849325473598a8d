"""A fresh workspace per test; every server a test starts is stopped at teardown."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from nocodetune.servers import manager
from nocodetune.workspace import Workspace


@pytest.fixture
def ws(workspace_dir: Path) -> Iterator[Workspace]:
    workspace = Workspace(workspace_dir)
    workspace.create_layout()
    yield workspace
    manager.stop_all(workspace, timeout=5)
