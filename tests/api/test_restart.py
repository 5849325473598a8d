"""An API restarted while a job runs picks the job up again; SSE then sees it finish."""

from __future__ import annotations

import httpx

from nocodetune.api.app import create_app
from nocodetune.jobs.service import JobService
from tests.api.conftest import live_server, read_sse
from tests.jobs.conftest import fake_command, wait_for


def test_api_restart_adopts_the_running_job(api_ws):
    command = fake_command("--steps", "25", "--sleep", "0.1")
    first = JobService(api_ws, command=command, poll_s=0.05)
    with live_server(create_app(api_ws, ("jobs",), job_service=first)) as url, httpx.Client(base_url=url) as client:
        assert client.post("/api/jobs", json={"name": "steady", "dataset": "sums", "run": True}).status_code == 201
        wait_for(lambda: (client.get("/api/jobs/steady").json()["progress"]["step"] or 0) >= 2)
    # the first API is gone (its executor state with it); the job is not
    second = JobService(api_ws, command=command, poll_s=0.05)
    with live_server(create_app(api_ws, ("jobs",), job_service=second)) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert second.executor is not None and second.executor.watching("steady")
        assert client.get("/api/jobs/steady").json()["status"] == "running"
        messages = read_sse(client, "/api/jobs/steady/events")
        assert messages[-1]["event"] == "finished"
        job = client.get("/api/jobs/steady").json()
        assert job["status"] == "succeeded" and job["progress"]["step"] == 25 and len(job["runs"]) == 1
