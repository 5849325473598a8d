"""Two servers on the same port and different hosts are two servers: unique ids, both listed, both stopped."""

from __future__ import annotations

import httpx
import psutil
import pytest

from nocodetune.servers import manager
from nocodetune.servers.ports import free_port, port_is_free
from nocodetune.workspace import Workspace


def _gone(pid: int) -> bool:
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_same_port_on_two_hosts_gets_two_ids_and_stop_all_stops_both(ws: Workspace) -> None:
    port = free_port("127.0.0.1")
    if not port_is_free("127.0.0.2", port):
        pytest.skip("127.0.0.2 is not usable on this machine")
    first = manager.start(ws, "data", host="127.0.0.1", port=port, background=True)
    second = manager.start(ws, "data", host="127.0.0.2", port=port, background=True)
    assert first.id != second.id
    assert {s.id for s in manager.list_servers(ws)} == {first.id, second.id}
    assert manager.status(ws, second.id).host == "127.0.0.2"
    assert httpx.get(f"{second.url}/health").status_code == 200

    stopped = manager.stop_all(ws, timeout=10)
    assert {r.id for r in stopped} == {first.id, second.id}
    assert _gone(first.pid) and _gone(second.pid)  # none left running, unmanaged
    assert manager.list_servers(ws) == []


def test_ids_are_names_and_never_collide_with_a_live_server(ws: Workspace) -> None:
    from nocodetune.workspace import check_name

    for host in ("127.0.0.1", "::1", "0.0.0.0", "192.168.1.20", "my-host.local"):
        check_name(manager.server_id(ws, "model", host, 8000), "server id")  # used in URLs and file names
    assert manager.server_id(ws, "api", "127.0.0.1", 8000) == "api-8000"
    assert manager.server_id(ws, "api", "::1", 8000) != manager.server_id(ws, "api", "127.0.0.1", 8000)
    record = manager.start(ws, "data", background=True)
    assert manager.server_id(ws, "data", "127.0.0.1", record.port) == f"{record.id}-2"  # a stale port reuse cannot overwrite it
