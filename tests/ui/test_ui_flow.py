"""Browser tests of single pages: upload (drag and drop, preview pages, a broken file),
the jobs list (filters, live refresh), real training followed live (slow), and the API token.

The whole path from an empty folder to a chat is tests/ui/test_ui_walk.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

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


def test_drag_and_drop_upload_then_preview_pages(page: Any, live_server: LiveServer, tmp_path: Path, shoot: Any) -> None:
    upload_dataset(page, live_server, tmp_path)
    assert page.locator("#train-new").get_attribute("href") == "/ui/jobs/new?dataset=reviews%401"
    shoot("datasets")


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
    # the New-job page checks the data as it opens; a real check is the walk test's business
    page.route("**/api/jobs/validate", lambda route: route.fulfill(status=200, content_type="application/json", body=json.dumps({"ok": True, "errors": [], "warnings": [], "stats": {}})))
    for path, ready in [
        ("/ui/datasets", "#datasets-list table, #datasets-list .empty-state"),
        ("/ui/jobs", "#jobs-table table, #jobs-table .empty-state"),
        ("/ui/jobs/new", "body[data-ready=true]"),
        ("/ui/servers", "#servers-list .empty-state, #servers-list table"),
        ("/ui/playground", "#server-a option"),
        ("/ui/models", "#models-list table, #models-list .empty-state"),
        ("/ui/compare", "#job-picks input"),
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
