"""The layers and the light/heavy split, checked rather than remembered.

The layer contract lives in pyproject.toml ([tool.importlinter]); the light/heavy rule
is checked by importing the faces in a fresh interpreter and looking at sys.modules,
because what matters is what a user waits for, not how the imports are spelled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "trl", "peft", "datasets", "accelerate")


def test_import_layers_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (it is part of the test extras)")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]


def _heavy_after(code: str, tmp_path: Path) -> list[str]:
    probe = code + f"\nimport sys, json\nprint(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_cli_help_imports_nothing_heavy(tmp_path: Path) -> None:
    code = "from typer.testing import CliRunner\nfrom nocodetune.cli.main import app\nassert CliRunner().invoke(app, ['--help']).exit_code == 0"
    assert _heavy_after(code, tmp_path) == []


def test_api_app_imports_nothing_heavy(tmp_path: Path) -> None:
    code = (
        "from fastapi.testclient import TestClient\n"
        "from nocodetune.api.app import create_app\n"
        "from nocodetune.jobs.bootstrap import init_workspace\n"
        f"ws = {str(tmp_path / 'ws')!r}\ninit_workspace(ws)\n"
        "with TestClient(create_app(ws)) as c:\n"
        "    for url in ('/health', '/api/jobs', '/api/files', '/api/bases', '/api/schema', '/api/servers', '/'):\n"
        "        assert c.get(url).status_code < 500, url\n"
    )
    assert _heavy_after(code, tmp_path) == []
