"""Every jobs route over real HTTP against a live server; jobs run the fake trainer."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import read_sse
from tests.jobs.conftest import wait_for


def status_of(client: httpx.Client, name: str) -> str:
    return client.get(f"/api/jobs/{name}").json()["status"]


def create(client: httpx.Client, name: str, **extra) -> dict:
    response = client.post("/api/jobs", json={"name": name, "base": "lora_train", "dataset": "sums", **extra})
    assert response.status_code == 201, response.text
    return response.json()


def test_bases_and_schema_describe_what_a_job_may_set(fake_api):
    url, _ = fake_api
    with httpx.Client(base_url=url) as client:
        bases = {b["name"]: b for b in client.get("/api/bases").json()}
        assert {"full_train", "lora_train", "qlora_train"} <= bases.keys()
        assert bases["lora_train"]["config"]["method"] == "lora"
        assert bases["lora_train"]["config"]["training"]["learning_rate"] == 2e-4
        assert "LoRA" in bases["lora_train"]["description"]
        assert bases["qlora_train"]["config"]["method"] == "qlora"  # inherited chain resolved
        schema = client.get("/api/schema").json()
        assert {"model", "dataset", "training", "lora"} <= schema["properties"].keys()
        assert client.get("/health").json()["status"] == "ok"


def test_create_get_list_filter_and_paginate(fake_api):
    url, _ = fake_api
    with httpx.Client(base_url=url) as client:
        job = create(client, "sum_a", description="adds numbers", set={"training.learning_rate": 1e-4})
        assert job["status"] == "created" and job["config"]["training"]["learning_rate"] == 1e-4
        assert job["sources"]["training.learning_rate"] == "job" and job["sources"]["lora.r"] == "base:lora_train"
        assert job["datasets"][0]["name"] == "sums" and job["datasets"][0]["version"] == 1
        create(client, "sum_b")
        child = client.post("/api/jobs", json={"name": "sum_child", "parent": "sum_a", "dataset": "sums@1"})
        assert child.status_code == 201, child.text
        assert child.json()["lineage"]["parent"] == "sum_a"
        assert client.get("/api/jobs/sum_a").json()["lineage"]["children"] == ["sum_child"]

        listing = client.get("/api/jobs").json()
        names = {item["name"] for item in listing["items"]}
        assert {"sum_a", "sum_b", "sum_child"} <= names and listing["total"] == len(names)
        assert [i["name"] for i in client.get("/api/jobs", params={"q": "adds"}).json()["items"]] == ["sum_a"]
        page = client.get("/api/jobs", params={"limit": 2, "offset": 0}).json()
        assert len(page["items"]) == 2 and page["total"] == listing["total"]
        rest = client.get("/api/jobs", params={"limit": 50, "offset": 2}).json()
        assert {i["name"] for i in page["items"]} | {i["name"] for i in rest["items"]} == names
        assert client.get("/api/jobs", params={"status": "succeeded"}).json()["total"] == 0
        assert client.get("/api/jobs", params={"base": "lora_train"}).json()["total"] >= 3

        # caller mistakes are 4xx naming what is wrong, and change nothing
        dup = client.post("/api/jobs", json={"name": "sum_a", "base": "lora_train", "dataset": "sums"})
        assert dup.status_code == 409 and dup.json()["field"] == "name"
        bad = client.post("/api/jobs", json={"name": "bad", "set": {"training.learning_rate": -1}})
        assert bad.status_code == 422 and "learning_rate" in bad.json()["message"]
        assert client.get("/api/jobs/bad").status_code == 404
        missing = client.post("/api/jobs", json={"name": "x", "dataset": "nope"})
        assert missing.status_code == 404 and "nope" in missing.json()["message"]
        unsafe = client.post("/api/jobs", json={"name": "../evil"})
        assert unsafe.status_code == 400 and unsafe.json()["field"] == "job name"
        assert client.post("/api/jobs", json={"nmae": "typo"}).status_code == 422
        assert client.get("/api/jobs", params={"status": "done"}).status_code == 400
        assert client.get("/api/jobs/ghost").json() == {
            "error": "NotFoundError", "message": "job 'ghost' does not exist", "field": "name", "hint": "list jobs with `nocodetune job list`"
        }


def test_run_streams_events_and_fills_metrics_samples_outputs_and_logs(fake_api):
    url, _ = fake_api
    with httpx.Client(base_url=url, timeout=30) as client:
        create(client, "runner")
        started = client.post("/api/jobs/runner/run")
        assert started.status_code == 202 and started.json()["status"] in {"queued", "running"}
        messages = read_sse(client, "/api/jobs/runner/events")
        kinds = [m["event"] for m in messages]
        assert kinds[0] == "started" and kinds[-1] == "finished" and kinds.count("log") == 6
        assert [m["id"] for m in messages] == sorted(m["id"] for m in messages)
        # resuming the stream from an event id gives only what came after it
        later = read_sse(client, f"/api/jobs/runner/events?after={messages[2]['id']}")
        assert [m["data"] for m in later] == [m["data"] for m in messages[3:]]

        job = client.get("/api/jobs/runner").json()
        assert job["status"] == "succeeded" and job["progress"]["progress"] == 1.0 and job["progress"]["step"] == 6
        assert job["model_path"] == "outputs/adapter"
        assert job["runs"][0]["exit_code"] == 0 and job["runs"][0]["log_file"] == "logs/run-1.log"

        metrics = client.get("/api/jobs/runner/metrics").json()
        assert metrics["metrics"]["train_loss"] == pytest.approx(2 / 6)
        assert [h["step"] for h in metrics["history"]] == [1, 2, 3, 4, 5, 6]
        assert client.get("/api/jobs/runner/samples").json() == [{"stage": "after", "prompt": "hi", "output": "hello"}]
        files = {f["path"]: f for f in client.get("/api/jobs/runner/outputs").json()}
        assert {"metrics.json", "samples.jsonl", "adapter/adapter_config.json"} <= files.keys()
        download = client.get("/api/jobs/runner/outputs/adapter/adapter_config.json")
        assert download.status_code == 200 and download.content == b"{}"
        assert client.get("/api/jobs/runner/outputs/..%2F..%2Fresolved.json").status_code in (400, 404)
        assert client.get("/api/jobs/runner/outputs/../resolved.json").status_code in (400, 404)
        assert client.get("/api/jobs/runner/outputs/nothing.bin").status_code == 404
        logs = client.get("/api/jobs/runner/logs", params={"tail": 5}).json()
        assert logs["run"] == 1 and any("fake trainer run 1" in line for line in logs["lines"])
        assert client.get("/api/jobs/runner/logs", params={"run": 7}).status_code == 404

        again = client.post("/api/jobs/runner/run")
        assert again.status_code == 409 and "clone" in again.json()["hint"]
        assert client.get("/api/jobs", params={"status": "succeeded"}).json()["items"][0]["name"] == "runner"


def test_cancel_then_resume_over_http(fake_api, api_ws):
    url, service = fake_api
    service.command = None  # replaced below by a slower fake
    from tests.jobs.conftest import fake_command

    service.executor.command = fake_command("--steps", "60", "--sleep", "0.1")
    with httpx.Client(base_url=url, timeout=30) as client:
        create(client, "slow", run=True)
        wait_for(lambda: (client.get("/api/jobs/slow").json()["progress"]["step"] or 0) >= 2)
        cancelled = client.post("/api/jobs/slow/cancel")
        assert cancelled.status_code == 202 and cancelled.json()["cancel_requested"] is True
        messages = read_sse(client, "/api/jobs/slow/events")
        assert messages[-1]["event"] == "cancelled"
        assert status_of(client, "slow") == "cancelled"
        assert client.post("/api/jobs/slow/cancel").status_code == 409
        assert (api_ws.job("slow").checkpoints / "last.json").exists()

        service.executor.command = fake_command("--steps", "60", "--sleep", "0.01")
        resumed = client.post("/api/jobs/slow/resume")
        assert resumed.status_code == 202
        wait_for(lambda: status_of(client, "slow") == "succeeded", timeout=60)
        job = client.get("/api/jobs/slow").json()
        assert [r["n"] for r in job["runs"]] == [1, 2] and [r["status"] for r in job["runs"]] == ["cancelled", "succeeded"]
        assert client.get("/api/jobs/slow/metrics").json()["metrics"]["resumed_from_step"] >= 2
        assert client.post("/api/jobs/slow/resume").status_code == 409


def test_validate_clone_and_delete(fake_api, api_ws):
    url, _ = fake_api
    with httpx.Client(base_url=url, timeout=120) as client:
        report = client.post("/api/jobs/validate", json={"name": "check", "base": "lora_train", "dataset": "sums", "set": {"model.source": "/no/such/model"}})
        assert report.status_code == 200
        assert report.json()["ok"] is False and any(e["field"] and e["field"].startswith("model") for e in report.json()["errors"])
        assert not api_ws.job("check").root.exists()

        create(client, "orig", set={"training.max_steps": 3})
        clone = client.post("/api/jobs/orig/clone", json={"name": "copy", "set": {"training.learning_rate": 5e-5}})
        assert clone.status_code == 201, clone.text
        body = clone.json()
        assert body["config"]["training"]["max_steps"] == 3 and body["config"]["training"]["learning_rate"] == 5e-5
        assert client.post("/api/jobs/orig/clone", json={"name": "copy"}).status_code == 409
        assert client.post("/api/jobs/ghost/clone", json={"name": "copy2"}).status_code == 404
        assert client.post("/api/jobs/copy/validate").status_code == 200

        create(client, "kid", parent="orig")
        refused = client.delete("/api/jobs/orig")
        assert refused.status_code == 409 and "kid" in refused.json()["message"]
        assert client.delete("/api/jobs/copy").json() == {"deleted": "copy", "orphaned_children": []}
        assert client.get("/api/jobs/copy").status_code == 404
        assert "copy" not in {i["name"] for i in client.get("/api/jobs").json()["items"]}
        assert not api_ws.job("copy").root.exists()
        assert client.delete("/api/jobs/orig", params={"force": True}).json()["orphaned_children"] == ["kid"]
