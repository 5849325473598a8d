"""Hostile-input tests share the API tests' workspace (bases, demo and `sums` datasets) and live server."""

from __future__ import annotations

import sys
from collections.abc import Callable

import pytest

from tests.api.conftest import api_ws, fake_api  # noqa: F401 - fixtures re-exported

__all__ = ["api_ws", "fake_api"]


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run the console-script entry (`nocodetune.cli.main.run`) in-process: (exit code, stdout, stderr).

    Through `run()` rather than Typer's test runner, because `run()` is what turns
    exceptions into messages for a user.
    """
    from nocodetune.cli.main import run

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["nocodetune", *args])
        capsys.readouterr()
        code = 0
        try:
            run()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return invoke
