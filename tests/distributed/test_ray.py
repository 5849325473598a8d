"""The Ray executor on a local two-node Ray cluster, inside a private network namespace (tests/netns.py).

The cluster: `ray start --head --node-ip-address 127.0.0.1` (dashboard on 127.0.0.1) and a
second node started against it. Every test trains the tiny model with
resources.executor=ray and num_nodes=2 (one Ray Train worker per node).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nocodetune.config.validate import preflight
from nocodetune.jobs.service import JobService
from nocodetune.records.job import read_resolved
from nocodetune.records.runs import list_runs
from tests import netns
from tests.distributed.conftest import events, wait_event
from tests.jobs.conftest import wait_for

pytestmark = pytest.mark.ray
RAY = str(Path(sys.executable).with_name("ray"))
ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cluster_env(cache_dir: Path) -> dict[str, str]:
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", NOCODETUNE_CACHE_DIR=str(cache_dir))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # `python` on the nodes is this one
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _ray(*args: str, env: dict[str, str], prefix: list[str] | None = None) -> None:
    done = subprocess.run([*(prefix or []), RAY, *args], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def ray_cluster(cache_dir: Path) -> Iterator[dict[str, str]]:
    """A head node and a worker node on 127.0.0.1; {"address": job-submission URL, "gcs": host:port}."""
    if not netns.inside():
        pytest.skip("Ray starts only inside a private network namespace")
    env = _cluster_env(cache_dir)
    port, dashboard = _free_port(), _free_port()
    _ray("start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--dashboard-host", "127.0.0.1",
         "--dashboard-port", str(dashboard), "--include-dashboard", "true", "--num-cpus", "1", "--disable-usage-stats", env=env)
    try:
        _ray("start", "--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1", "--num-cpus", "1", env=env)
        yield {"address": f"http://127.0.0.1:{dashboard}", "gcs": f"127.0.0.1:{port}", "cache": str(cache_dir)}
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True, timeout=120)


def _ray_job(real_job, name: str, address: str, **training: object) -> str:
    config = {
        "resources": {"executor": "ray", "ray_address": address, "num_nodes": 2},
        "training": {"max_steps": 8, "per_device_train_batch_size": 2, "logging_steps": 2, "save_steps": 4, **training},
    }
    return real_job(name, config)


def _ray_status(address: str, submission_id: str) -> str:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(address).get_job_status(submission_id).value


def test_validate_checks_every_node_sees_the_workspace(ws, real_job, ray_cluster):
    name = _ray_job(real_job, "checked", ray_cluster["address"])
    report = preflight(ws, read_resolved(ws.job(name)), ws.job(name).root)
    assert report.ok, report.errors
    nodes = report.stats["ray"]["nodes"]
    assert len(nodes) == 2 and all(n["sees_workspace"] and n["has_nocodetune"] for n in nodes)
    assert report.stats["resources"]["world_size"] == 2 and report.stats["resources"]["executor"] == "ray"
    assert not list((ws.root / ".tmp").glob("ray-probe-*"))  # the probe cleans up


def test_a_two_node_job_succeeds_on_ray(ws, real_job, ray_cluster):
    name = _ray_job(real_job, "on_ray", ray_cluster["address"])
    service = JobService(ws, poll_s=0.2)
    service.start()
    try:
        service.submit(name)
        wait_for(lambda: service.get(name).status in ("succeeded", "failed"), timeout=300)
        assert service.get(name).status == "succeeded", service.get(name).error
    finally:
        service.stop()
    (run,) = list_runs(ws.job(name))
    assert run.executor == "ray" and run.executor_ref and run.executor_address == ray_cluster["address"] and run.world_size == 2
    assert _ray_status(ray_cluster["address"], run.executor_ref) == "SUCCEEDED"
    started = wait_event(ws, name, "started")
    assert started["world_size"] == 2
    assert len({w["node"] for w in started["workers"]}) == 2  # one worker on each Ray node
    assert (ws.job(name).adapter_dir / "adapter_model.safetensors").is_file()
    assert "Ray training ended: ok" in ws.job(name).run_log(1).read_text()  # the Ray job's log, fetched through its id


def test_job_cancel_stops_it_on_ray_and_resume_continues(ws, real_job, ray_cluster):
    name = _ray_job(real_job, "stopped", ray_cluster["address"], max_steps=400, save_steps=5, eval_split=0.0)
    service = JobService(ws, poll_s=0.2, cancel_grace_s=60)
    service.start()
    try:
        service.submit(name)
        saved = wait_event(ws, name, "checkpoint", timeout=300)
        env = dict(os.environ, NOCODETUNE_WORKSPACE=str(ws.root))
        cancelled = subprocess.run([sys.executable, "-m", "nocodetune", "job", "cancel", name], env=env, capture_output=True, text=True, timeout=300)
        assert cancelled.returncode == 0 and "is cancelled" in " ".join(cancelled.stdout.split()), cancelled.stdout + cancelled.stderr
        run = list_runs(ws.job(name))[0]
        assert _ray_status(ray_cluster["address"], run.executor_ref) == "STOPPED"
        stop = events(ws, name, "cancelled")[-1]
        assert stop["step"] >= saved["step"] and stop["checkpoint"]
        service.resume(name)
        wait_event(ws, name, "log", after=lambda e: e["run"] == 2)
        service.cancel(name, wait=True)
    finally:
        service.stop()
    second = [e for e in events(ws, name) if e.get("run") == 2]
    assert next(e for e in second if e["type"] == "started")["resumed_from"]
    assert min(e["step"] for e in second if e["type"] == "log") > stop["step"]
    assert [r.executor_ref != list_runs(ws.job(name))[0].executor_ref for r in list_runs(ws.job(name))[1:]] == [True]


def _api(ws, port: int) -> subprocess.Popen[bytes]:
    code = (
        "import uvicorn\nfrom nocodetune.api.app import create_app\n"
        f"uvicorn.run(create_app({str(ws.root)!r}, ('jobs',)), host='127.0.0.1', port={port}, log_level='warning')\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ), start_new_session=True)
    wait_for(lambda: _answers(port), timeout=60)
    return proc


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_api_killed_mid_run_is_reconciled_by_the_next(ws, real_job, ray_cluster):
    name = _ray_job(real_job, "survives", ray_cluster["address"], max_steps=60, save_steps=20)
    port = _free_port()
    first = _api(ws, port)
    try:
        assert httpx.post(f"http://127.0.0.1:{port}/api/jobs/{name}/run", timeout=60).status_code == 202
        wait_event(ws, name, "log", timeout=300)
    finally:
        os.killpg(first.pid, signal.SIGKILL)  # the API dies; the Ray job does not
        first.wait(timeout=30)
    second = _api(ws, port)
    try:
        job = httpx.get(f"http://127.0.0.1:{port}/api/jobs/{name}", timeout=60).json()
        assert job["status"] == "running" and job["executor"] == "ray" and job["world_size"] == 2
        assert job["runs"][0]["executor_ref"].startswith(f"nocodetune-{name}-run1-")
        deadline = time.monotonic() + 300
        while job["status"] == "running" and time.monotonic() < deadline:
            time.sleep(1)
            job = httpx.get(f"http://127.0.0.1:{port}/api/jobs/{name}", timeout=60).json()
        assert job["status"] == "succeeded", job
        assert job["progress"]["step"] == 60 and len(job["runs"]) == 1
        logs = httpx.get(f"http://127.0.0.1:{port}/api/jobs/{name}/logs", timeout=60).json()
        assert any("Ray training ended: ok" in line for line in logs["lines"])
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=30)


def test_a_node_that_cannot_see_the_workspace_is_refused(ws, real_job, ray_cluster):
    """Last in this module: it adds a third node whose view of the filesystem hides the workspace."""
    name = _ray_job(real_job, "blind", ray_cluster["address"])
    hidden = Path(*ws.root.parts[:3])  # e.g. /tmp/pytest-of-root: a tmpfs over it hides every test workspace
    env = _cluster_env(Path(ray_cluster["cache"]))
    inner = f"mount -t tmpfs none {hidden} && exec {RAY} start --address {ray_cluster['gcs']} --node-ip-address 127.0.0.1 --num-cpus 1"
    done = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c", inner], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    def third_node_seen():
        report = preflight(ws, read_resolved(ws.job(name)), ws.job(name).root)
        return report if len(report.stats.get("ray", {}).get("nodes", [])) == 3 else None

    report = wait_for(third_node_seen, timeout=120, every=1.0)
    error = next(e for e in report.errors if e.field == "resources.executor")
    assert "cannot read the workspace at" in error.message and "same path" in error.message
    assert sum(not n["sees_workspace"] for n in report.stats["ray"]["nodes"]) == 1

