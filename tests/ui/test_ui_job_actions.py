"""Job actions in words a person can act on: what a queued job waits for, taking it off the
queue without a checkpoint promise, stopping a running job (its checkpoint), Resume vs Run
again, a deleted dataset's link, and no Export button on a server without export routes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import LiveServer
from tests.ui.helpers import assert_no_cli_text, review_rows, upload_csv

pytestmark = pytest.mark.browser


def create(server: LiveServer, name: str, dataset: str = "demo", steps: int = 6) -> None:
    spec = {"name": name, "base": "lora_train", "dataset": dataset, "set": {"training.max_steps": steps, "training.logging_steps": 1}}
    assert httpx.post(f"{server.url}/api/jobs", json=spec, timeout=60).status_code == 201


def status(server: LiveServer, name: str) -> str:
    return httpx.get(f"{server.url}/api/jobs/{name}", timeout=10).json()["status"]


def test_queue_stop_resume_and_run_again_are_explained(page: Any, fake_server: LiveServer, tmp_path: Path, shoot: Any) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    fake_server.trainer_args = ["--sleep", "0.05", "--hold-file", str(hold), "--hold-from", "3"]
    create(fake_server, "first")
    create(fake_server, "second")
    asked: list[str] = []

    def answer(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    # A server without export routes (an older API, or one serving jobs without exports): no Export control at all.
    page.route("**/api/jobs/*/exports", lambda route: route.fulfill(status=404, content_type="application/json", body='{"detail": "Not Found"}'))
    assert httpx.post(f"{fake_server.url}/api/jobs/first/run", timeout=30).status_code == 202
    deadline = time.monotonic() + 30
    while status(fake_server, "first") != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert httpx.post(f"{fake_server.url}/api/jobs/second/run", timeout=30).status_code == 202

    # The queued job says what it waits for; taking it off the queue promises no checkpoint.
    page.goto(f"{fake_server.url}/ui/jobs/second")
    page.wait_for_selector('#job-status [data-status="queued"]')
    page.wait_for_function("(document.querySelector('#action-help')?.textContent ?? '').includes('first is training now')")
    cancel = page.locator('#job-actions [data-action="cancel"]')
    assert cancel.inner_text() == "Take off the queue"
    shoot("job-queued")
    cancel.click()
    page.wait_for_selector('#job-status [data-status="cancelled"]')
    assert "has not started, so nothing is lost" in asked[-1] and "checkpoint" not in asked[-1]
    run_again = page.locator('#job-actions [data-action="run"]')
    run_again.wait_for()
    assert run_again.inner_text() == "Run again from the start" and page.locator('#job-actions [data-action="resume"]').is_hidden()
    assert "starts from the beginning" in page.inner_text("#action-help")

    # The running job: stopping it keeps the steps done; then Resume names the step it continues from.
    page.goto(f"{fake_server.url}/ui/jobs/first")
    page.wait_for_function("(document.querySelector('[data-stat=\"step\"]')?.textContent ?? '').startsWith('3 of')")
    assert "Stop saves a checkpoint" in page.inner_text("#action-help")
    page.click('#job-actions [data-action="cancel"]')
    page.wait_for_selector('#job-status [data-status="cancelled"]', timeout=30_000)
    assert "saves a checkpoint of the 3 steps done" in asked[-1]
    resume = page.locator('#job-actions [data-action="resume"]')
    resume.wait_for()
    assert resume.inner_text() == "Resume from step 3" and page.locator('#job-actions [data-action="run"]').is_hidden()
    assert "continues from the checkpoint saved at step 3" in page.inner_text("#action-help")
    assert_no_cli_text(page)
    shoot("job-stopped")
    hold.unlink()
    resume.click()
    page.wait_for_selector('#job-status [data-status="succeeded"]', timeout=30_000)
    # the status can arrive before the log stream of the new run catches up
    page.wait_for_function("(document.querySelector('#log-readable')?.textContent ?? '').includes('resumed from the last checkpoint')", timeout=30_000)
    assert page.locator("#export-slot").is_hidden()  # the exports listing does not answer: no dead button


def test_a_deleted_dataset_says_so(page: Any, fake_server: LiveServer) -> None:
    upload_csv(fake_server.url, "old", "prompt,completion", review_rows(20))
    create(fake_server, "uses-old", dataset="old")
    assert httpx.delete(f"{fake_server.url}/api/files/old", params={"force": "true"}, timeout=30).status_code in (200, 204)
    page.goto(f"{fake_server.url}/ui/jobs/uses-old")
    row = page.locator('#datasets tr[data-dataset="old"]')
    row.wait_for()
    page.wait_for_function("(document.querySelector('#datasets tr[data-dataset=\"old\"]')?.textContent ?? '').includes('Deleted from Datasets')")
    assert row.locator("a").count() == 0
    page.goto(f"{fake_server.url}/ui/datasets?dataset=old&version=1")
    assert "was deleted" in page.locator("#deleted-notice").inner_text()
    # A New-job link to it says so too, and the user's other data is not silently swapped in.
    page.goto(f"{fake_server.url}/ui/jobs/new?dataset=old@1")
    page.wait_for_selector("body[data-ready=true]", timeout=30_000)
    assert "was deleted" in page.inner_text("#dataset-hint")
