"""End to end over HTTP with the real trainer: create a job on a tiny model, run it, watch SSE."""

from __future__ import annotations

import httpx
import pytest

from nocodetune.api.app import create_app
from nocodetune.jobs.service import JobService
from tests.api.conftest import live_server, read_sse


@pytest.mark.slow  # ~30 s on 2 CPU cores: the trainer process imports torch/transformers/trl
def test_tiny_job_trains_end_to_end_over_http(api_ws, tiny_model_dir):
    service = JobService(api_ws, poll_s=0.2)  # the real `python -m nocodetune.training JOB_DIR`
    spec = {
        "name": "tiny_sums",
        "base": "lora_train",
        "dataset": "sums",
        "run": True,
        "set": {
            "model.source": str(tiny_model_dir),
            "training.max_steps": 4,
            "training.per_device_train_batch_size": 4,
            "training.gradient_accumulation_steps": 1,
            "training.logging_steps": 1,
            "training.max_length": 64,
            "training.eval_split": 0.2,
            "output.num_samples": 1,
            "output.sample_max_new_tokens": 4,
        },
    }
    with live_server(create_app(api_ws, ("jobs",), job_service=service)) as url, httpx.Client(base_url=url, timeout=60) as client:
        created = client.post("/api/jobs", json=spec)
        assert created.status_code == 201, created.text
        assert created.json()["status"] in {"queued", "running"}
        messages = read_sse(client, "/api/jobs/tiny_sums/events", timeout=600)
        kinds = [m["event"] for m in messages]
        job = client.get("/api/jobs/tiny_sums").json()
        log_tail = "\n".join(client.get("/api/jobs/tiny_sums/logs", params={"tail": 40}).json()["lines"])
        assert kinds[-1] == "finished", f"{kinds}\n{log_tail}"
        assert "started" in kinds and kinds.index("started") < kinds.index("log")
        logs = [m["data"] for m in messages if m["event"] == "log"]
        assert logs[-1]["step"] == 4 and logs[-1]["total_steps"] == 4 and logs[-1]["loss"] > 0

        assert job["status"] == "succeeded" and job["progress"]["progress"] == 1.0
        assert job["runs"][0]["exit_code"] == 0 and job["model_path"] == "outputs/adapter"
        outputs = {f["path"] for f in client.get("/api/jobs/tiny_sums/outputs").json()}
        assert "adapter/adapter_config.json" in outputs and "metrics.json" in outputs
        metrics = client.get("/api/jobs/tiny_sums/metrics").json()
        assert metrics["metrics"] and any(h.get("loss") for h in metrics["history"])
        config = client.get("/api/jobs/tiny_sums/outputs/adapter/adapter_config.json")
        assert config.status_code == 200 and config.json()["peft_type"] == "LORA"


@pytest.mark.slow
def test_real_trainer_cancel_saves_a_checkpoint_and_resume_finishes(api_ws, tiny_model_dir):
    from tests.jobs.conftest import wait_for

    service = JobService(api_ws, poll_s=0.2, cancel_grace_s=120)
    spec = {
        "name": "tiny_long",
        "dataset": "sums",
        "run": True,
        "set": {
            "model.source": str(tiny_model_dir),
            "training.max_steps": 400,
            "training.per_device_train_batch_size": 2,
            "training.logging_steps": 1,
            "training.max_length": 64,
            "output.num_samples": 0,
        },
    }
    with live_server(create_app(api_ws, ("jobs",), job_service=service)) as url, httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/api/jobs", json=spec).status_code == 201
        wait_for(lambda: (client.get("/api/jobs/tiny_long").json()["progress"]["step"] or 0) >= 2, timeout=300)
        assert client.post("/api/jobs/tiny_long/cancel").status_code == 202
        messages = read_sse(client, "/api/jobs/tiny_long/events", timeout=300)
        job = client.get("/api/jobs/tiny_long").json()
        assert messages[-1]["event"] == "cancelled" and job["status"] == "cancelled", job
        assert job["runs"][0]["exit_code"] == 143
        assert any(api_ws.job("tiny_long").checkpoints.glob("checkpoint-*"))

        # resume: the second run starts from that checkpoint; stop it again after a step
        assert client.post("/api/jobs/tiny_long/resume").status_code == 202
        events_path = api_ws.job("tiny_long").events

        def second_run_started() -> dict | None:
            import json

            runs = [json.loads(line) for line in events_path.read_text().splitlines()]
            return next((e for e in runs if e["type"] == "started" and e.get("run") == 2), None)

        started = wait_for(second_run_started, timeout=300)
        assert started["resumed_from"], started
        wait_for(lambda: (client.get("/api/jobs/tiny_long").json()["progress"]["step"] or 0) > job["progress"]["step"], timeout=300)
        client.post("/api/jobs/tiny_long/cancel")
        wait_for(lambda: client.get("/api/jobs/tiny_long").json()["status"] != "running", timeout=300)
        job = client.get("/api/jobs/tiny_long").json()
        assert [r["n"] for r in job["runs"]] == [1, 2] and job["status"] == "cancelled", job
