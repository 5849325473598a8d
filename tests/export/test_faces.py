"""The CLI command and the REST routes: the same export, refusals named, progress as events."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from nocodetune.api.app import create_app
from nocodetune.cli.main import app as cli
from nocodetune.jobs.service import JobService
from nocodetune.records.exports import exports_dir
from nocodetune.workspace import Workspace
from tests.api.conftest import live_server, read_sse
from tests.jobs.conftest import wait_for


def _export_ids(ws: Workspace, job: str) -> list[str]:
    folder = exports_dir(ws.job(job))
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_cli_exports_lists_and_refuses(chain_ws: Workspace, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "cli-merged"
    done = runner.invoke(cli, ["-w", str(chain_ws.root), "job", "export", "second", "--format", "merged", "--out", str(out)])
    assert done.exit_code == 0, done.output
    assert "Exported" in done.output and (out / "model.safetensors").is_file() and (out / "nocodetune_weights.json").is_file()

    listed = runner.invoke(cli, ["-w", str(chain_ws.root), "job", "exports", "second"])
    assert listed.exit_code == 0 and "succeeded" in listed.output and "merged" in listed.output

    before = _export_ids(chain_ws, "third")
    refused = runner.invoke(cli, ["-w", str(chain_ws.root), "job", "export", "third", "--format", "adapter"])
    assert refused.exit_code == 2 and "3 adapters" in refused.output
    no_q4k = runner.invoke(cli, ["-w", str(chain_ws.root), "job", "export", "third", "--format", "gguf", "--quant", "q4_k"])
    assert no_q4k.exit_code == 2 and "Q4_K quantiser" in no_q4k.output
    bad = runner.invoke(cli, ["-w", str(chain_ws.root), "job", "export", "third", "--format", "onnx"])
    assert bad.exit_code == 2 and "unknown --format" in bad.output
    assert _export_ids(chain_ws, "third") == before  # refusals write nothing


def test_api_export_runs_in_the_background_with_progress_events(chain_ws: Workspace) -> None:
    service = JobService(chain_ws, poll_s=0.2)
    with live_server(create_app(chain_ws, ("jobs",), job_service=service)) as url, httpx.Client(base_url=url, timeout=60) as client:
        started = client.post("/api/jobs/first/export", json={"format": "gguf", "quant": "q8_0"})
        assert started.status_code == 202, started.text
        record = started.json()
        assert record["status"] in ("queued", "running") and record["pid"]
        messages = read_sse(client, f"/api/jobs/first/exports/{record['id']}/events", timeout=600)
        kinds = [m["event"] for m in messages]
        assert kinds[0] == "started" and kinds[-1] == "finished", kinds
        assert any(m["event"] == "progress" and 0 < m["data"]["progress"] < 1 for m in messages)

        final = client.get(f"/api/jobs/first/exports/{record['id']}").json()
        assert final["status"] == "succeeded" and final["details"]["gguf_file"] == "first-q8_0.gguf"
        assert record["id"] in [e["id"] for e in client.get("/api/jobs/first/exports").json()]
        assert client.get("/api/jobs/first").json()["status"] == "succeeded"

        listed = {f["path"]: f for f in client.get("/api/jobs/first/outputs").json()}
        path = f"exports/{record['id']}/first-q8_0.gguf"
        assert path in listed and "adapter/adapter_config.json" in listed  # exports beside the job's own outputs
        body = client.get(f"/api/jobs/first/outputs/{path}").content
        expected = next(f["sha256"] for f in final["files"] if f["path"] == "first-q8_0.gguf")
        assert hashlib.sha256(body).hexdigest() == expected and len(body) == listed[path]["size"]


def test_api_refusals_answer_at_once_and_write_nothing(chain_ws: Workspace, tmp_path: Path) -> None:
    service = JobService(chain_ws, poll_s=0.2)
    with live_server(create_app(chain_ws, ("jobs",), job_service=service)) as url, httpx.Client(base_url=url, timeout=60) as client:
        before = _export_ids(chain_ws, "third")
        adapter = client.post("/api/jobs/third/export", json={"format": "adapter"})
        assert adapter.status_code == 422 and "3 adapters" in adapter.json()["message"] and adapter.json()["field"] == "format"
        outside = client.post("/api/jobs/third/export", json={"format": "merged", "out": str(tmp_path / "anywhere")})
        assert outside.status_code == 400 and "outside" in outside.json()["message"]
        unknown = client.post("/api/jobs/third/export", json={"format": "onnx"})
        assert unknown.status_code == 422 and unknown.json()["field"] == "format"
        assert client.post("/api/jobs/nope/export", json={"format": "merged"}).status_code == 404
        assert client.get("/api/jobs/third/exports/merged-999").status_code == 404
        assert _export_ids(chain_ws, "third") == before


def test_an_export_whose_process_died_reads_as_interrupted(chain_ws: Workspace) -> None:
    import subprocess
    import sys

    from nocodetune.jobs.exports import create_export, get_export
    from nocodetune.processes import create_time
    from nocodetune.records.exports import (
        INTERRUPTED_ERROR,
        ExportRequest,
        events_path,
        export_dir,
        update_export,
    )

    record = create_export(chain_ws, "first", ExportRequest(format="merged"))
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    started = create_time(gone.pid)
    gone.wait()
    update_export(chain_ws.job("first"), record.id, {"status": "running", "pid": gone.pid, "pid_started_at": started})
    settled = get_export(chain_ws, "first", record.id)
    assert settled.status == "failed" and settled.error == INTERRUPTED_ERROR
    last = json.loads(events_path(export_dir(chain_ws.job("first"), record.id)).read_text().splitlines()[-1])
    assert last["type"] == "failed" and last["kind"] == "killed"
    assert get_export(chain_ws, "first", record.id).finished_at == settled.finished_at  # settled once, not again


def test_an_export_takes_a_job_slot_and_is_refused_while_training_holds_them(chain_ws: Workspace) -> None:
    from nocodetune.jobs.slots import SlotPool

    before = _export_ids(chain_ws, "first")
    wait_for(lambda: SlotPool(chain_ws).holders() == {}, timeout=60)  # an earlier test's background export has ended
    training = SlotPool(chain_ws).try_take(1, "job busy")  # what a running training job holds on a 1-slot CPU machine
    assert training is not None
    try:
        refused = CliRunner().invoke(cli, ["-w", str(chain_ws.root), "job", "export", "first", "--format", "merged"])
        assert refused.exit_code != 0 and "no free slot for export of first: in use by job busy" in refused.output
        with live_server(create_app(chain_ws, ("jobs",), job_service=JobService(chain_ws, poll_s=0.2))) as url:
            answer = httpx.post(f"{url}/api/jobs/first/export", json={"format": "merged"}, timeout=60)
        assert answer.status_code == 409 and "in use by job busy" in answer.json()["message"]
        assert _export_ids(chain_ws, "first") == before  # refused before anything was written
    finally:
        training.release()

    # a background export holds the slot in its own process until it ends
    with live_server(create_app(chain_ws, ("jobs",), job_service=JobService(chain_ws, poll_s=0.2))) as url, httpx.Client(base_url=url, timeout=60) as client:
        record = client.post("/api/jobs/first/export", json={"format": "merged"}).json()
        second = client.post("/api/jobs/second/export", json={"format": "merged"})  # the first is still importing torch
        assert second.status_code == 409 and "export of first" in second.json()["message"]
        read_sse(client, f"/api/jobs/first/exports/{record['id']}/events", timeout=600)
        assert client.get(f"/api/jobs/first/exports/{record['id']}").json()["status"] == "succeeded"
    wait_for(lambda: SlotPool(chain_ws).holders() == {}, timeout=60)  # and gives it back when its process ends
