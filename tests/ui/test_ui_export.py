"""Export from the job page, with no command line: the formats offered, a refusal in plain
words next to the control, a real export followed to the end and listed with its files.

Only the trainer is a stand-in (tests/jobs/fake_trainer.py with --copy-model saves the tiny
model as the job's trained model); the export is the real one, in its own process, as the
API runs it (about 6 s for a merged export of the tiny model)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import LiveServer
from tests.ui.helpers import assert_no_cli_text

pytestmark = pytest.mark.browser


def run_job(server: LiveServer, name: str, model: Path) -> None:
    spec = {"name": name, "base": "lora_train", "dataset": "demo", "run": True, "set": {"training.max_steps": 3, "model.source": str(model)}}
    assert httpx.post(f"{server.url}/api/jobs", json=spec, timeout=60).status_code == 201
    deadline = time.monotonic() + 60
    while httpx.get(f"{server.url}/api/jobs/{name}", timeout=10).json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_export_a_job_from_its_page(page: Any, fake_server: LiveServer, tiny_model_dir: Path, shoot: Any) -> None:
    fake_server.trainer_args = ["--sleep", "0.05", "--copy-model"]
    run_job(fake_server, "trained", tiny_model_dir)
    assert httpx.post(f"{fake_server.url}/api/jobs", json={"name": "not-run", "base": "lora_train", "dataset": "demo"}, timeout=60).status_code == 201

    # A job that has not trained offers no export.
    page.goto(f"{fake_server.url}/ui/jobs/not-run")
    page.wait_for_selector('#job-status [data-status="created"]')
    page.wait_for_timeout(500)
    assert page.locator("#export-slot").is_hidden()

    page.goto(f"{fake_server.url}/ui/jobs/trained")
    page.wait_for_selector("#export-slot #export-format", state="visible", timeout=30_000)
    formats = page.eval_on_selector_all("#export-format option", "os => os.map(o => [o.value, o.textContent])")
    assert [v for v, _ in formats] == ["merged", "adapter", "gguf", "ollama"]  # no hub: the API does not say uploads are allowed
    assert "GGUF file (llama.cpp, LM Studio)" in [t for _, t in formats]
    assert page.locator("#export-quant").is_hidden()  # a weight type only for GGUF and Ollama
    page.select_option("#export-format", "gguf")
    assert page.locator("#export-quant").is_visible()
    quants = page.eval_on_selector_all("#export-quant option", "os => os.map(o => o.value)")
    assert sorted(quants) == ["bf16", "f16", "f32", "q4_0", "q8_0"] and quants[0] == "q8_0"
    assert "No exports yet" in page.inner_text("#export-list")

    # An adapter of a job whose training saved a whole model: refused, the server's reason shown by the control.
    page.select_option("#export-format", "adapter")
    page.click("#export-start")
    error = page.locator("#export-error")
    error.wait_for(state="visible")
    assert "has no adapter" in error.inner_text() and "full fine-tune" in error.inner_text()
    assert "“Merged model (one Hugging Face folder)” format" in error.inner_text()  # its hint, in the UI's words
    assert_no_cli_text(page)
    assert httpx.get(f"{fake_server.url}/api/jobs/trained/exports", timeout=10).json() == []  # a refusal writes nothing

    # A merged export: progress while it runs, then listed with where its files are and their size.
    page.select_option("#export-format", "merged")
    assert error.is_hidden()
    page.click("#export-start")
    page.wait_for_function("(document.querySelector('#export-progress')?.textContent ?? '').includes('Merged model')", timeout=30_000)
    assert page.locator("#export-start").is_disabled()  # one at a time from this page
    row = page.locator('#export-list li[data-export="merged-1"]')
    row.locator('[data-status="succeeded"]').wait_for(timeout=90_000)
    record = httpx.get(f"{fake_server.url}/api/jobs/trained/exports/merged-1", timeout=10).json()
    assert record["status"] == "succeeded"
    text = row.inner_text()
    assert record["folder"] in text and record["folder"].endswith("exports/merged-1/model")
    assert f"{len(record['files'])} files" in text
    total = sum(f["size"] for f in record["files"])
    assert page.evaluate(f"NCT.fmtBytes({total})") in text
    row.locator("details summary").click()
    links = row.locator("details a")
    assert links.count() == len(record["files"])
    href = row.locator("details a", has_text="config.json").first.get_attribute("href")
    assert httpx.get(f"{fake_server.url}{href}", timeout=10).status_code == 200  # the file is one click away
    assert page.locator("#export-start").is_enabled()
    assert_no_cli_text(page)
    shoot("job-export")
