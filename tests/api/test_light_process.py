"""The API process never holds torch/transformers: validation runs in a child process."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = r"""
import sys
from fastapi.testclient import TestClient
from nocodetune.api.app import create_app
from nocodetune.jobs.bootstrap import init_workspace

init_workspace(sys.argv[1])
with TestClient(create_app(sys.argv[1], ("jobs",))) as client:
    report = client.post("/api/jobs/validate", json={"name": "v", "dataset": "demo", "set": {"model.source": sys.argv[2]}}).json()
    assert report["ok"], report
    assert report["stats"]["total_steps"] > 0, report
    assert client.get("/api/jobs").status_code == 200
print("heavy:", sorted(m for m in ("torch", "transformers", "trl", "peft") if m in sys.modules))
"""


def test_validating_through_the_api_keeps_torch_out_of_its_process(tmp_path, tiny_model_dir):
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "ws"), str(tiny_model_dir)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "heavy: []" in done.stdout


def test_cli_help_imports_no_heavy_library():
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "nocodetune", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip().split(".")[0] for line in done.stderr.splitlines() if "|" in line}
    assert not imported & {"torch", "transformers", "trl", "peft", "datasets", "sqlalchemy", "alembic"}
