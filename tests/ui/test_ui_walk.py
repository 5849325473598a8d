"""The whole no-code path in a real browser, with no command-line step: an empty folder →
the API makes it a workspace → add a local model on the Models page → upload a CSV whose
columns need mapping → the job form (real validation) → run (the fake trainer, which saves
the registered model as the job's output) → the live curve, point for point → serve →
the side-by-side chat. Every page on the way is screenshotted at laptop and phone width."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import LiveServer, stop_model_servers
from tests.ui.helpers import assert_no_cli_text, review_rows

pytestmark = pytest.mark.browser

DRAWN_POINTS = "document.querySelectorAll('#loss-chart .scatterlayer .trace:first-child .points path').length"


def drop_file(page: Any, selector: str, name: str, text: str, mime: str) -> None:
    """Drop a file on an element the way a user's drag and drop does (DataTransfer + drop event)."""
    page.evaluate(
        """([sel, name, text, mime]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, { type: mime }));
            const zone = document.querySelector(sel);
            zone.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
            zone.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [selector, name, text, mime],
    )


@pytest.fixture
def empty_server(tmp_path: Path) -> Any:
    folder = tmp_path / "new-folder"
    folder.mkdir()
    server = LiveServer(folder, fake_trainer=True).start()
    try:
        yield server, folder
    finally:
        stop_model_servers(server)
        server.stop()


def test_from_an_empty_folder_to_a_side_by_side_chat(page: Any, empty_server: Any, tiny_model_dir: Path, tmp_path: Path, shoot: Any) -> None:
    server, folder = empty_server
    foreign: list[str] = []
    page.on("request", lambda req: None if req.url.startswith((server.url, "data:", "blob:")) else foreign.append(req.url))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(30_000)
    hold = tmp_path / "hold"
    hold.touch()
    server.trainer_args = ["--sleep", "0.1", "--copy-model", "--hold-file", str(hold), "--hold-from", "3", "--heartbeat", "0.5"]

    # The empty folder became a workspace when the server started; the first page says how to begin.
    assert (folder / "jobs").is_dir() and (folder / "files").is_dir()
    page.goto(server.url)
    page.wait_for_selector("#getting-started:not([hidden])")
    shoot("walk-1-start")

    # A model that lives in a folder on this machine, added from the browser.
    page.click("nav >> text=Models")
    page.wait_for_url("**/ui/models")
    page.wait_for_load_state("load")  # the page's script is attached before we type into it
    page.fill("#model-path", str(tiny_model_dir))
    page.fill("#model-name", "Tiny chat model")
    page.click("#register-btn")
    page.wait_for_selector('#models-list tr[data-kind="registered"]')
    assert "Tiny chat model" in page.inner_text("#models-list")
    shoot("walk-2-models")

    # A 60-row CSV whose columns are not called prompt/completion.
    page.click("nav >> text=Datasets")
    page.wait_for_url("**/ui/datasets")
    page.wait_for_load_state("load")  # a drop before the page's script is attached would be lost
    csv = "review,sentiment\n" + "\n".join(review_rows(60)) + "\n"
    drop_file(page, "#dropzone", "reviews.csv", csv, "text/csv")
    assert page.input_value("#ds-name") == "reviews"
    page.click("#upload-btn")
    page.wait_for_selector("#upload-result .alert.ok")
    assert "Uploaded reviews as version 1 · 60 rows" in page.inner_text("#upload-result")
    shoot("walk-3-datasets")
    page.click("#train-new")

    # The form: the real validation finds no layout; the columns are mapped with dropdowns.
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#job-dataset") == "reviews"
    page.wait_for_selector("#err-f-dataset-columns:not([hidden])", timeout=120_000)
    assert_no_cli_text(page)
    page.select_option("#f-dataset-format", "prompt_completion")
    page.select_option("#f-dataset-columns-prompt", "review")
    page.select_option("#f-dataset-columns-completion", "sentiment")
    page.select_option("#model-pick", label="Tiny chat model")
    page.click("#presets >> text=Quick test")
    page.fill("#f-training-max_steps", "6")
    page.fill("#f-training-max_length", "64")
    page.fill("#job-name", "reviews-job")
    page.click("#validate-btn")
    page.wait_for_selector('#report [data-report-ok="true"]', timeout=120_000)
    report = page.inner_text("#report")
    assert "Training takes 6 steps" in report and "prompt from “review”, answer from “sentiment”" in report
    assert "positive" in page.inner_text("#example-preview mark") or "negative" in page.inner_text("#example-preview mark")  # the answer is what is learned
    shoot("walk-4-new-job")
    page.click("#create-run-btn")

    # The live curve: while the run is held after step 3, the chart has exactly the logged points.
    page.wait_for_url(f"{server.url}/ui/jobs/reviews-job")
    page.wait_for_function(f"{DRAWN_POINTS} === 3", timeout=60_000)
    history = httpx.get(f"{server.url}/api/jobs/reviews-job/metrics", timeout=10).json()["history"]
    assert [h["step"] for h in history if "loss" in h] == [1, 2, 3]
    page.wait_for_function("(document.querySelector('#job-stage')?.textContent ?? '').includes('still working')")
    shoot("walk-5-running")
    hold.unlink()
    page.wait_for_selector('#job-status [data-status="succeeded"]', timeout=60_000)
    page.wait_for_function(f"{DRAWN_POINTS} === 6")
    assert_no_cli_text(page)

    # Chat with it, next to the model it was trained from, the same prompt to both.
    page.click('#job-actions [data-action="serve"]')
    page.wait_for_url(re.compile(r".*/ui/playground\?server=.+"), timeout=240_000)
    page.wait_for_selector('#tools-a [data-status="healthy"]', timeout=240_000)
    assert "Job reviews-job" in page.inner_text("#server-a")
    page.click("#start-base")
    page.wait_for_selector('#tools-b [data-status="healthy"]', timeout=240_000)
    assert page.input_value("#server-a") != page.input_value("#server-b")
    page.fill("#prompt", "great product, works well")
    page.press("#prompt", "Enter")
    page.wait_for_function("document.querySelectorAll('#chat-a .msg.assistant:not(.pending), #chat-b .msg.assistant:not(.pending)').length === 2", timeout=120_000)
    assert page.locator(".msg.error").count() == 0
    for side in ("a", "b"):
        assert page.locator(f"#chat-{side} .msg.user").inner_text() == "great product, works well"
    # Each new prompt starts both conversations afresh: still one question and one answer per pane.
    page.fill("#prompt", "arrived broken")
    page.click("#send")
    page.wait_for_function("document.querySelectorAll('#chat-a .msg.user').length === 1 && document.querySelector('#chat-a .msg.user').textContent === 'arrived broken' && document.querySelectorAll('#chat-a .msg.assistant:not(.pending), #chat-b .msg.assistant:not(.pending)').length === 2", timeout=120_000)
    assert_no_cli_text(page)
    shoot("walk-6-playground")

    page.goto(f"{server.url}/ui/servers")
    page.wait_for_selector("#servers-list tr[data-server]")
    assert "job reviews-job" in page.inner_text("#servers-list")
    shoot("walk-7-servers")
    assert foreign == [], f"the UI fetched from outside 127.0.0.1: {foreign}"
    assert errors == []
