"""Two API processes on one workspace and one registry (SQLite by default, PostgreSQL with --postgres).

What one process writes, the other reads; a name created through both at once exists once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from nocodetune.servers.ports import free_port
from nocodetune.workspace import Workspace

CSV = b"prompt,completion\n" + b"".join(b"q%d,a%d\n" % (i, i) for i in range(10))


@pytest.fixture
def two_apis(api_ws: Workspace) -> Iterator[tuple[str, str]]:
    procs, urls = [], []
    for _ in range(2):
        port = free_port()
        cmd = [sys.executable, "-m", "nocodetune", "--workspace", str(api_ws.root), "server", "start", "api", "--host", "127.0.0.1", "--port", str(port)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ.copy(), start_new_session=True))
        urls.append(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 90
        for proc, url in zip(procs, urls):
            while True:
                assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else "exited"
                try:
                    if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, "an API process did not start"
                time.sleep(0.2)
        yield urls[0], urls[1]
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_two_api_processes_share_one_registry(two_apis: tuple[str, str], api_ws: Workspace) -> None:
    a, b = two_apis
    up = httpx.post(f"{a}/api/files", files={"file": ("shared.csv", CSV, "text/csv")}, data={"name": "shared"})
    assert up.status_code == 201, up.text
    assert [v["version"] for v in httpx.get(f"{b}/api/files/shared").json()["versions"]] == [1]

    made = httpx.post(f"{b}/api/jobs", json={"name": "from_b", "dataset": "shared@1"}, timeout=60)
    assert made.status_code == 201, made.text
    seen = httpx.get(f"{a}/api/jobs/from_b").json()
    assert seen["status"] == "created" and seen["datasets"][0]["name"] == "shared"
    assert {j["name"] for j in httpx.get(f"{a}/api/jobs").json()["items"]} == {"demo_job", "from_b"}

    assert httpx.delete(f"{a}/api/jobs/from_b").status_code == 200
    assert httpx.get(f"{b}/api/jobs/from_b").status_code == 404


def test_the_same_name_created_through_both_at_once_exists_once(two_apis: tuple[str, str], api_ws: Workspace) -> None:
    results: list[int] = []
    barrier = threading.Barrier(2)

    def create(url: str) -> None:
        barrier.wait()
        results.append(httpx.post(f"{url}/api/jobs", json={"name": "raced", "dataset": "sums@1"}, timeout=60).status_code)

    threads = [threading.Thread(target=create, args=(url,)) for url in two_apis]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert sorted(results) == [201, 409], results
    for url in two_apis:
        names = [j["name"] for j in httpx.get(f"{url}/api/jobs").json()["items"]]
        assert names.count("raced") == 1, names
