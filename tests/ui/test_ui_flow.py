"""The whole no-code flow in a real browser: upload → configure → validate → run → serve → chat.

Every page is also screenshotted at laptop and phone width (test-artifacts/screenshots/).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.ui.conftest import LiveServer

pytestmark = pytest.mark.browser

EXAMPLES = [
    ("great product, works well", "positive"),
    ("terrible, broke after a day", "negative"),
    ("I love it, five stars", "positive"),
    ("waste of money", "negative"),
    ("exactly what I needed", "positive"),
    ("arrived broken and late", "negative"),
]


def write_dataset(path: Path, rows: int = 36) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        for i in range(rows):
            review, label = EXAMPLES[i % len(EXAMPLES)]
            fh.write(json.dumps({"prompt": f"Classify the sentiment of this review: {review} #{i}", "completion": label}) + "\n")
    return path


def drop_file(page: Any, selector: str, path: Path, mime: str) -> None:
    """Drop a file on an element the way a user's drag and drop does (DataTransfer + drop event)."""
    page.evaluate(
        """([sel, name, text, mime]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, { type: mime }));
            const zone = document.querySelector(sel);
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [selector, path.name, path.read_text(encoding="utf-8"), mime],
    )


def watch_requests(page: Any, server: LiveServer) -> list[str]:
    """Every URL the page fetches that is not on our own server."""
    foreign: list[str] = []
    page.on("request", lambda req: None if req.url.startswith((server.url, "data:", "blob:")) else foreign.append(req.url))
    return foreign


def upload_dataset(page: Any, server: LiveServer, tmp_path: Path) -> None:
    page.goto(f"{server.url}/ui/datasets")
    drop_file(page, "#dropzone", write_dataset(tmp_path / "reviews.jsonl"), "application/json")
    assert page.input_value("#ds-name") == "reviews"  # the name defaults to the file name
    page.click("#upload-btn")
    page.wait_for_selector("#upload-result .alert.ok")
    assert "Uploaded reviews as version 1" in page.inner_text("#upload-result")
    row = page.locator('#datasets-list tr[data-dataset="reviews"]')
    assert "36" in row.inner_text() and "jsonl" in row.inner_text()
    # the preview opened on the new version: 20 rows per page, then the rest
    page.wait_for_selector("#preview-table tbody tr")
    assert page.locator("#preview-table tbody tr").count() == 20
    assert "prompt" in page.text_content("#preview-table thead") and "completion" in page.text_content("#preview-table thead")
    page.click("#next-page")
    page.wait_for_function("document.querySelectorAll('#preview-table tbody tr').length === 16")
    assert "Rows 21–36 of 36" in page.inner_text("#page-info")


@pytest.mark.slow
def test_whole_flow_in_the_browser(page: Any, live_server: LiveServer, tiny_model_dir: Path, tmp_path: Path, shoot: Any) -> None:
    foreign = watch_requests(page, live_server)
    page.set_default_timeout(30_000)

    page.goto(f"{live_server.url}/ui/jobs")
    page.wait_for_selector("#jobs-table table, #jobs-table .empty-state")
    shoot("jobs-start")

    upload_dataset(page, live_server, tmp_path)
    shoot("datasets")

    # New job from lora_train, with the model and a few settings changed in the form.
    page.goto(f"{live_server.url}/ui/jobs/new")
    page.wait_for_selector("#f-training-max_steps")
    assert page.input_value("#job-base") == "lora_train"
    page.fill("#job-name", "ui_job")
    page.select_option("#job-dataset", "reviews")
    page.fill("#f-model-source", str(tiny_model_dir))
    page.fill("#f-training-max_steps", "4")
    page.fill("#f-training-per_device_train_batch_size", "4")
    page.fill("#f-training-max_length", "64")
    page.click("#advanced summary")
    page.fill("#f-training-logging_steps", "1")
    page.fill("#f-output-num_samples", "1")
    page.fill("#f-output-sample_max_new_tokens", "8")

    # A value the schema refuses: the error lands next to its field, nothing is created.
    page.fill("#f-training-learning_rate", "5")
    page.click("#validate-btn")
    err = page.locator("#err-f-training-learning_rate")
    err.wait_for(state="visible")
    assert "less than 1" in err.inner_text()
    assert page.get_attribute("#f-training-learning_rate", "aria-invalid") == "true"
    shoot("new-job-error")
    assert httpx.get(f"{live_server.url}/api/jobs/ui_job").status_code == 404

    # A setting that works but truncates examples: a warning next to the field, and the report says so.
    page.fill("#f-training-learning_rate", "0.001")
    page.fill("#f-training-max_length", "16")
    page.click("#validate-btn")
    warning = page.locator("#err-f-training-max_length")
    warning.wait_for(state="visible")
    assert "truncated" in warning.inner_text() and "Warning" in warning.inner_text()
    assert int(page.text_content('[data-fact="tokens.over_max_length"] dd')) > 0
    page.fill("#f-training-max_length", "64")

    assert not err.is_visible()  # editing the field clears its error
    page.click("#validate-btn")
    page.wait_for_selector('#report [data-report-ok="true"]')
    # the pre-flight numbers a user checks: steps, token lengths against max_length, memory
    assert page.text_content('[data-fact="total_steps"] dd') == "4"
    assert page.text_content('[data-fact="tokens.max_length"] dd') == "64"
    assert int(page.text_content('[data-fact="tokens.max"] dd')) > 0
    assert page.locator('[data-fact^="memory."]').count() > 0
    shoot("new-job-validated")

    page.click("#create-run-btn")
    page.wait_for_url(f"{live_server.url}/ui/jobs/ui_job")
    page.wait_for_selector('#job-status [data-status="succeeded"], #job-status [data-status="failed"]', timeout=420_000)
    assert page.get_attribute("#job-status .badge", "data-status") == "succeeded", page.inner_text("#job-error")
    page.wait_for_function("document.querySelector('#job-progress-text').textContent === '100%'")
    # the loss curve was drawn from the event stream
    page.wait_for_selector("#loss-chart .scatterlayer .trace")
    assert page.locator("#loss-empty").is_hidden()
    page.wait_for_selector("#outputs a")
    assert page.locator('#config tr[data-key="training.max_steps"]').inner_text().split()[-1] == "job"
    assert "lora_train" in page.inner_text("#lineage")
    shoot("job-detail")

    # Clone with an edit: the clone keeps base and data, and records only what changed.
    page.click("#clone-link")
    # The fields appear before the clone's values arrive: expect() waits for them.
    expect(page.locator("#job-name")).to_have_value("ui_job-2")
    expect(page.locator("#f-training-max_steps")).to_have_value("4")
    expect(page.locator("#f-model-source")).to_have_value(str(tiny_model_dir))
    page.fill("#f-training-max_steps", "6")
    shoot("clone")
    page.click("#create-btn")
    page.wait_for_url(f"{live_server.url}/ui/jobs/ui_job-2")
    page.wait_for_selector('#job-status [data-status="created"]')
    clone = httpx.get(f"{live_server.url}/api/jobs/ui_job-2").json()
    assert clone["config"]["training"]["max_steps"] == 6 and clone["config"]["training"]["learning_rate"] == 0.001
    assert clone["datasets"][0]["name"] == "reviews"

    page.goto(f"{live_server.url}/ui/jobs?status=succeeded")
    row = page.locator('#jobs-table tr[data-job="ui_job"]')
    row.wait_for()
    assert "succeeded" in row.inner_text() and "100%" in row.inner_text()
    shoot("jobs")

    # Serve it and chat in the playground.
    page.goto(f"{live_server.url}/ui/jobs/ui_job")
    page.click('#job-actions [data-action="serve"]')
    page.wait_for_url(re.compile(r".*/ui/playground\?server=.+"))
    page.wait_for_selector('#tools-a [data-status="healthy"]', timeout=180_000)
    page.fill("#prompt", "Classify the sentiment of this review: great product")
    page.press("#prompt", "Enter")
    reply = page.locator("#chat-a .msg.assistant:not(.pending)")
    reply.wait_for(timeout=120_000)
    assert page.locator("#chat-a .msg.error").count() == 0
    assert int(reply.get_attribute("data-chars")) > 0  # streamed text arrived (a tiny random model may answer in whitespace)

    # Side by side with the model it was trained from.
    page.click("#start-base")
    page.wait_for_selector('#tools-b [data-status="healthy"]', timeout=180_000)
    page.fill("#prompt", "Say something")
    page.click("#send")
    page.wait_for_function("document.querySelectorAll('#chat-a .msg.assistant:not(.pending), #chat-b .msg.assistant:not(.pending)').length === 3", timeout=120_000)
    assert page.locator("#chat-b .msg.error").count() == 0
    assert int(page.locator("#chat-b .msg.assistant").last.get_attribute("data-chars")) > 0
    shoot("playground")

    page.goto(f"{live_server.url}/ui/servers")
    page.wait_for_selector("#servers-list tr[data-server]")
    assert "ui_job" in page.inner_text("#servers-list")
    shoot("servers")

    assert foreign == [], f"the UI fetched from outside 127.0.0.1: {foreign}"


def test_unreadable_upload_shows_a_clear_error(page: Any, live_server: LiveServer, tmp_path: Path, shoot: Any) -> None:
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"this is not a parquet file at all")
    page.goto(f"{live_server.url}/ui/datasets")
    page.set_input_files("#file-input", str(bad))
    page.click("#upload-btn")
    alert = page.locator("#upload-result .alert.error")
    alert.wait_for()
    assert "broken.parquet" in alert.inner_text() or "parquet" in alert.inner_text().lower()
    shoot("datasets-upload-error")
    assert httpx.get(f"{live_server.url}/api/files/broken").status_code == 404  # nothing was stored


def test_every_page_renders_without_script_errors(page: Any, live_server: LiveServer, shoot: Any) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    for path, ready in [
        ("/ui/datasets", "#datasets-list table, #datasets-list .empty-state"),
        ("/ui/jobs", "#jobs-table table, #jobs-table .empty-state"),
        ("/ui/jobs/new", "#f-training-learning_rate"),
        ("/ui/servers", "#servers-list .empty-state, #servers-list table"),
        ("/ui/playground", "#server-a option"),
    ]:
        page.goto(live_server.url + path)
        page.wait_for_selector(ready, state="attached")
        assert page.locator('nav a[aria-current="page"]').count() == 1
    page.goto(live_server.url + "/")
    assert page.url.endswith("/ui/jobs")
    page.wait_for_selector('#jobs-table tr[data-job="demo_job"]')
    page.fill("#filter-q", "no-such-job")
    page.wait_for_selector("text=No jobs match these filters")
    page.fill("#filter-q", "demo")
    page.wait_for_selector('#jobs-table tr[data-job="demo_job"]')
    page.select_option("#filter-status", "running")
    page.wait_for_selector("text=No jobs match these filters")
    assert "status=running" in page.url and "q=demo" in page.url  # filters survive a reload / can be shared
    shoot("servers-empty")
    assert errors == []


@pytest.mark.slow
def test_progress_updates_live_and_cancel_then_resume(page: Any, live_server: LiveServer, tiny_model_dir: Path) -> None:
    spec = {
        "name": "long_job",
        "base": "lora_train",
        "dataset": "demo",
        "set": {"model.source": str(tiny_model_dir), "training.max_steps": 400, "training.logging_steps": 1,
                "training.per_device_train_batch_size": 2, "training.max_length": 32, "output.num_samples": 0},
    }
    assert httpx.post(f"{live_server.url}/api/jobs", json=spec, timeout=60).status_code == 201
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before cancelling
    page.goto(f"{live_server.url}/ui/jobs/long_job")
    page.wait_for_selector('#job-status [data-status="created"]')
    assert page.locator('#job-actions [data-action="cancel"]').is_hidden()
    page.click('#job-actions [data-action="run"]')

    # The bar moves while the job runs: seen at some step strictly between start and end.
    page.wait_for_function(
        "(() => { const v = Number(document.querySelector('#job-progress').value); return v > 0 && v < 100; })()", timeout=180_000
    )
    assert page.get_attribute("#job-status .badge", "data-status") == "running"
    page.wait_for_selector("#loss-chart .scatterlayer .trace")
    page.goto(f"{live_server.url}/ui/jobs")
    row = page.locator('#jobs-table tr[data-job="long_job"]')
    row.wait_for()
    first = row.locator("progress").get_attribute("value")
    page.wait_for_function(
        f"Number(document.querySelector('#jobs-table tr[data-job=\"long_job\"] progress').value) > {float(first)}", timeout=60_000
    )  # the list refreshes by itself

    page.goto(f"{live_server.url}/ui/jobs/long_job")
    page.click('#job-actions [data-action="cancel"]')
    page.wait_for_selector('#job-status [data-status="cancelled"]', timeout=120_000)
    resume = page.locator('#job-actions [data-action="resume"]')
    resume.wait_for()
    assert resume.is_enabled()
    assert httpx.get(f"{live_server.url}/api/jobs/long_job").json()["status"] == "cancelled"


def test_ui_asks_for_the_api_token_when_the_server_wants_one(page: Any, ui_workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOCODETUNE_API_TOKEN", "s3cret")
    server = LiveServer(ui_workspace).start()
    try:
        assert httpx.get(f"{server.url}/api/jobs").status_code == 401
        assert httpx.post(f"{server.url}/ui/proxy/model-1/v1/chat/completions", json={}).status_code == 401  # the chat proxy too
        asked: list[str] = []

        def answer(dialog: Any) -> None:
            asked.append(dialog.message)
            dialog.accept("s3cret")

        page.on("dialog", answer)
        page.goto(f"{server.url}/ui/jobs")
        page.wait_for_selector('#jobs-table tr[data-job="demo_job"]')
        assert len(asked) == 1 and "token" in asked[0]
        page.goto(f"{server.url}/ui/datasets")  # the token is remembered for the tab
        page.wait_for_selector('#datasets-list tr[data-dataset="demo"]')
        assert len(asked) == 1
        with page.expect_download() as info:  # a link cannot send the token; the UI fetches it instead
            page.click('#datasets-list tr[data-dataset="demo"] a[download]')
        download = info.value
        assert download.suggested_filename.endswith(".jsonl")
        assert Path(download.path()).read_text(encoding="utf-8").count("\n") == 480
    finally:
        server.stop()
