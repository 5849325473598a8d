"""The faces of the manager: `nocodetune server ...`, ai_server.sh and /api/servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from nocodetune.cli.main import app as cli
from nocodetune.servers import manager
from nocodetune.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def test_cli_start_list_logs_stop(ws: Workspace) -> None:
    runner = CliRunner()
    base = ["--workspace", str(ws.root), "server"]
    started = runner.invoke(cli, [*base, "start", "data", "--background"])
    assert started.exit_code == 0, started.output
    [record] = manager.list_servers(ws)
    assert record.id in started.output and record.url in started.output

    listed = runner.invoke(cli, [*base, "list"], env={"COLUMNS": "200"})
    assert record.id in listed.output and "ok" in listed.output
    shown = runner.invoke(cli, [*base, "status", record.id], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and str(record.log_path) in shown.output.replace("\n", "")
    logs = runner.invoke(cli, [*base, "logs", record.id])
    assert logs.exit_code == 0 and "Uvicorn running" in logs.output

    stopped = runner.invoke(cli, [*base, "stop", "--all"])
    assert f"stopped {record.id}" in stopped.output
    assert "no servers running" in runner.invoke(cli, [*base, "list"]).output
    missing = runner.invoke(cli, [*base, "status", record.id])
    assert missing.exit_code != 0


def test_ai_server_sh_nohup_starts_a_background_data_server(ws: Workspace) -> None:
    env = {
        **os.environ,
        "SERVER_TYPE": "data_load_server",
        "NOHUP": "True",
        "WORKSPACE": str(ws.root),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHON": sys.executable,
    }
    done = subprocess.run([str(REPO / "ai_server.sh")], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [record] = manager.list_servers(ws)
    assert record.kind == "data" and record.background
    assert httpx.get(f"{record.url}/health").status_code == 200

    bad = subprocess.run([str(REPO / "ai_server.sh")], env={**env, "SERVER_TYPE": "web"}, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "SERVER_TYPE" in bad.stderr


def test_rest_routes(ws: Workspace) -> None:
    from nocodetune.api.app import create_app

    with TestClient(create_app(ws, routes=("servers",))) as api:
        created = api.post("/api/servers", json={"kind": "data"})
        assert created.status_code == 201, created.text
        server_id = created.json()["id"]
        assert [s["id"] for s in api.get("/api/servers").json()] == [server_id]
        assert api.get(f"/api/servers/{server_id}").json()["healthy"] is True
        lines = api.get(f"/api/servers/{server_id}/logs", params={"tail": 20}).json()["lines"]
        assert any("Uvicorn running" in line for line in lines)
        assert api.delete(f"/api/servers/{server_id}").status_code == 204
        assert api.get(f"/api/servers/{server_id}").status_code == 404
        refused = api.post("/api/servers", json={"kind": "data", "host": "0.0.0.0"})
        assert refused.status_code == 422 and refused.json()["field"] == "host"
        assert api.post("/api/servers", json={"kind": "nope"}).status_code == 422
