"""The server manager in background mode: start, list, logs, stop, crashes and port choice."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from nocodetune.errors import ConfigError, ConflictError, NocodetuneError, NotFoundError
from nocodetune.servers import manager
from nocodetune.workspace import Workspace


def test_background_data_server_lifecycle(ws: Workspace) -> None:
    record = manager.start(ws, "data", background=True)
    assert record.id == f"data-{record.port}" and record.url == f"http://127.0.0.1:{record.port}"
    assert httpx.get(f"{record.url}/health").json()["status"] == "ok"  # start returned only once healthy
    log = Path(record.log_path or "")
    assert log.parent == ws.logs / "data" and log.suffix == ".log"
    assert psutil.Process(record.pid).create_time() == pytest.approx(record.pid_create_time)

    [listed] = manager.list_servers(ws)
    assert (listed.id, listed.healthy, listed.kind) == (record.id, True, "data")
    assert listed.uptime_seconds >= 0
    assert manager.status(ws, record.id).port == record.port
    assert any("Uvicorn running" in line or "Application startup complete" in line for line in manager.logs(ws, record.id, tail=50))

    manager.stop(ws, record.id)
    assert not psutil.pid_exists(record.pid) or psutil.Process(record.pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{record.url}/health")
    assert manager.list_servers(ws) == []
    assert log.is_file()  # the log outlives the server


def test_killed_server_is_dropped_from_the_list(ws: Workspace) -> None:
    record = manager.start(ws, "data", background=True)
    os.kill(record.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while manager.list_servers(ws, check_health=False):
        assert time.monotonic() < deadline, "a server killed with -9 is still listed"
        time.sleep(0.1)
    assert not list((ws.logs / "data").glob("*.server.json"))
    with pytest.raises(NotFoundError):
        manager.status(ws, record.id)


def test_two_servers_started_at_once_get_different_ports(ws: Workspace) -> None:
    results: list = []
    errors: list = []

    def start() -> None:
        try:
            results.append(manager.start(ws, "data", background=True))
        except Exception as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert len({r.port for r in results}) == 2
    assert all(httpx.get(f"{r.url}/health").status_code == 200 for r in results)
    assert {s.id for s in manager.list_servers(ws)} == {r.id for r in results}
    assert len(manager.stop_all(ws)) == 2
    assert manager.list_servers(ws) == []


def test_model_server_in_background(ws: Workspace, tiny_model_dir: Path) -> None:
    record = manager.start(ws, "model", model=str(tiny_model_dir), background=True)
    models = httpx.get(f"{record.url}/v1/models").json()["data"]
    assert [m["id"] for m in models] == [tiny_model_dir.name]
    reply = httpx.post(
        f"{record.url}/v1/chat/completions",
        json={"model": tiny_model_dir.name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3},
        timeout=60,
    )
    assert reply.status_code == 200 and reply.json()["usage"]["completion_tokens"] >= 1
    assert record.serves.startswith("model ")
    manager.stop(ws, record.id)


def test_refusals_change_nothing(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError) as err:
        manager.start(ws, "data", host="0.0.0.0", background=True)
    assert err.value.field == "host" and "NOCODETUNE_API_TOKEN" in (err.value.hint or "")
    with pytest.raises(ConfigError) as err:
        manager.start(ws, "web", background=True)
    assert err.value.field == "kind"
    with pytest.raises(NotFoundError) as err:
        manager.start(ws, "model", job="missing", background=True)
    assert err.value.field == "job"
    ws.job("untrained").root.mkdir()
    with pytest.raises(NotFoundError, match="no trained model"):
        manager.start(ws, "model", job="untrained", background=True)
    with pytest.raises(ConfigError):
        manager.start(ws, "data", model="default", background=True)
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ConflictError) as err:
            manager.start(ws, "data", port=taken.getsockname()[1], background=True)
        assert err.value.field == "port"
    assert manager.list_servers(ws) == []
    assert not any((ws.logs).rglob("*.log"))  # nothing was spawned


def test_a_server_that_fails_to_start_reports_its_log(ws: Workspace, tmp_path: Path) -> None:
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text('{"model_type": "no-such-architecture"}')
    with pytest.raises(NocodetuneError) as err:
        manager.start(ws, "model", model=str(broken), background=True, startup_timeout=120)
    assert "did not start" in err.value.message and "exited" in err.value.message
    assert err.value.file and Path(err.value.file).parent == ws.logs / "model"
    assert "exited with code 2" in err.value.message
    assert f"cannot load the model in {broken}" in (err.value.hint or "")  # the log's last lines say why
    assert manager.list_servers(ws) == []


def test_record_is_plain_json_next_to_the_logs(ws: Workspace) -> None:
    record = manager.start(ws, "data", background=True)
    saved = json.loads((ws.logs / "data" / f"{record.id}.server.json").read_text())
    assert saved["pid"] == record.pid and saved["port"] == record.port and saved["log_path"] == record.log_path


def test_follow_logs_streams_new_lines_until_the_server_stops(ws: Workspace) -> None:
    record = manager.start(ws, "data", background=True)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(manager.logs(ws, record.id, tail=0, follow=True, poll_s=0.05)))
    reader.start()
    httpx.get(f"{record.url}/health?probe=follow-test")
    deadline = time.monotonic() + 10
    while not any("follow-test" in line for line in seen):
        assert time.monotonic() < deadline, f"new log line not followed: {seen}"
        time.sleep(0.05)
    manager.stop(ws, record.id)
    reader.join(10)
    assert not reader.is_alive(), "follow did not end when the server stopped"


def test_foreground_server_is_listed_and_stoppable(ws: Workspace) -> None:
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "nocodetune", "--workspace", str(ws.root), "server", "start", "data"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (servers := manager.list_servers(ws)) or not servers[0].healthy:
            assert proc.poll() is None and time.monotonic() < deadline, "foreground server did not come up"
            time.sleep(0.2)
        [info] = servers
        assert (info.pid, info.background, info.log_path) == (proc.pid, False, None)
        manager.stop(ws, info.id)
        assert proc.wait(15) in (0, -15)  # uvicorn shuts down cleanly, then re-raises SIGTERM
        assert manager.list_servers(ws) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_port_taken_between_choice_and_bind_is_retried(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from nocodetune.servers import ports

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        offered = iter([taken, ports.free_port()])  # first offer loses the race to another process
        monkeypatch.setattr(manager, "free_port", lambda host="127.0.0.1": next(offered))
        record = manager.start(ws, "data", background=True)
    assert record.port != taken
    assert httpx.get(f"{record.url}/health").status_code == 200
    failed_logs = [p for p in (ws.logs / "data").glob("*.log") if p.name != Path(record.log_path or "").name]
    assert len(failed_logs) == 1 and "address already in use" in failed_logs[0].read_text().lower()
