"""What the API shows of a job's processes (the UI's "workers"), and resource errors through validate."""

from __future__ import annotations

import time

from fastapi.testclient import TestClient

from nocodetune.api.app import create_app
from nocodetune.jobs.service import JobService
from nocodetune.records.job import read_resolved
from tests.jobs.conftest import fake_command, make_job_folder, wait_for


def _set_resources(ws, name: str, model: object = None, **values: object) -> None:
    resolved = read_resolved(ws.job(name))
    if model is not None:
        resolved.config.model.source = str(model)  # a model validate reads in a moment
    for key, value in values.items():
        setattr(resolved.config.resources, key, value)
    resolved.write(ws.job(name).resolved_json)


def test_job_detail_shows_world_size_executor_and_workers(ws):
    make_job_folder(ws, "wide")
    _set_resources(ws, "wide", num_processes=2)
    service = JobService(ws, command=fake_command("--steps", "3", "--sleep", "0.05"), poll_s=0.05)
    with TestClient(create_app(ws, ("jobs",), job_service=service)) as client:
        before = client.get("/api/jobs/wide").json()
        assert (before["executor"], before["world_size"], before["workers"], before["runs"]) == ("local", 2, [], [])
        assert client.post("/api/jobs/wide/run").status_code == 202
        wait_for(lambda: client.get("/api/jobs/wide").json()["status"] == "succeeded")
        job = client.get("/api/jobs/wide").json()
    assert job["executor"] == "local" and job["world_size"] == 2
    assert [w["rank"] for w in job["workers"]] == [0, 1] and all(w["pid"] for w in job["workers"])
    (run,) = job["runs"]
    assert run["world_size"] == 2 and run["executor"] == "local" and run["executor_ref"] is None


def test_validate_refuses_resources_this_machine_cannot_give(ws, monkeypatch, tiny_model_dir):
    make_job_folder(ws, "impossible")
    _set_resources(ws, "impossible", tiny_model_dir, num_nodes=2, strategy="fsdp")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a CPU machine, whatever runs the test
    with TestClient(create_app(ws, ("jobs",), job_service=JobService(ws, command=fake_command()))) as client:
        report = client.post("/api/jobs/impossible/validate").json()
    fields = {e["field"]: e["message"] for e in report["errors"]}
    assert "resources.executor: ray" in fields["resources.num_nodes"]
    assert "needs CUDA GPUs" in fields["resources.strategy"]


def test_an_unanswering_ray_address_is_an_error_at_validate_not_a_hang(ws, tiny_model_dir):
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(1)  # accepts connections, never answers
    make_job_folder(ws, "on_ray")
    _set_resources(ws, "on_ray", tiny_model_dir, executor="ray", ray_address=f"http://127.0.0.1:{silent.getsockname()[1]}")
    with TestClient(create_app(ws, ("jobs",), job_service=JobService(ws, command=fake_command()))) as client:
        t = time.monotonic()
        report = client.post("/api/jobs/on_ray/validate").json()
        took = time.monotonic() - t
        run = client.post("/api/jobs/on_ray/run")
    silent.close()
    error = next(e for e in report["errors"] if e["field"] == "resources.ray_address")
    assert "no Ray cluster answers at http://127.0.0.1:" in error["message"]
    assert took < 60
    assert run.status_code == 202  # queued; the start fails with the same message instead of hanging
    with TestClient(create_app(ws, ("jobs",), job_service=JobService(ws, command=fake_command()))) as client:
        wait_for(lambda: client.get("/api/jobs/on_ray").json()["status"] == "failed", timeout=60)
        assert "no Ray cluster answers" in client.get("/api/jobs/on_ray").json()["error"]
