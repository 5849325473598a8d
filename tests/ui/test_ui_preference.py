"""Preference tuning and several processes in the UI: the objective suggested for a file of
preference pairs (with beta and the process count among all settings, their errors by the
control), and on the job page the reward-margin chart, held-out preference accuracy in
words, and the processes the run used."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.ui.conftest import LiveServer
from tests.ui.helpers import assert_no_cli_text, upload_csv
from tests.ui.test_ui_form import open_form, stub_validate

pytestmark = pytest.mark.browser

# What validate reports for a file of prompt / chosen / rejected rows (the trainer's own detection).
PAIRS = {
    "ok": True,
    "errors": [],
    "warnings": [],
    "stats": {"dataset": "pairs@1", "rows": 12, "used_rows": 12, "format": "preference",
              "columns": {"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"}, "train_rows": 10, "eval_rows": 2},
}


def test_preference_pairs_suggest_preference_tuning(page: Any, fake_server: LiveServer, shoot: Any) -> None:
    upload_csv(fake_server.url, "pairs", "prompt,chosen,rejected", [f"q{i},good {i},bad {i}" for i in range(12)])
    stub_validate(page, [PAIRS])
    open_form(page, fake_server)
    assert page.input_value("#job-dataset") == "pairs"
    options = page.eval_on_selector_all("#f-objective option", "os => os.map(o => o.textContent)")
    assert options == ["Learn the answers (SFT)", "Prefer the chosen answer (DPO)", "Prefer the chosen answer, in one step (ORPO)"]
    page.wait_for_function("(document.querySelector('#objective-hint')?.textContent ?? '').includes('chosen and a rejected answer')")
    assert page.eval_on_selector("#f-objective", "s => s.selectedOptions[0].textContent") == "Prefer the chosen answer (DPO)"
    assert "“Prefer the chosen answer (DPO)” is suggested" in page.inner_text("#objective-hint")

    # Beta and the number of processes are among all settings, in words.
    page.click("#advanced summary")
    assert page.inner_text('label[for="f-preference-beta"]') == "Preference strength (beta)"
    assert page.inner_text('label[for="f-resources-num_processes"]') == "Training processes"
    assert "This machine" in page.inner_text("#f-resources-executor")
    page.fill("#f-preference-beta", "0.2")

    # A process count the schema refuses: the server's error sits by that control.
    page.fill("#job-name", "prefer")
    page.fill("#f-resources-num_processes", "0")
    page.click("#create-btn")
    err = page.locator("#err-f-resources-num_processes")
    err.wait_for(state="visible")
    assert "between 1 and 1024" in err.inner_text()
    assert_no_cli_text(page)
    shoot("new-job-preference")

    page.fill("#f-resources-num_processes", "2")
    page.click("#create-btn")
    page.wait_for_url("**/ui/jobs/prefer", timeout=30_000)
    config = httpx.get(f"{fake_server.url}/api/jobs/prefer", timeout=10).json()["config"]
    assert (config["objective"], config["preference"]["beta"], config["resources"]["num_processes"]) == ("dpo", 0.2, 2)

    # Choosing by hand wins over the suggestion.
    stub_validate(page, [PAIRS])
    open_form(page, fake_server)
    page.wait_for_function("(document.querySelector('#objective-hint')?.textContent ?? '').length > 0")
    page.select_option("#f-objective", '"orpo"')
    assert page.inner_text("#objective-hint") == ""


def test_preference_job_page_shows_margin_accuracy_and_processes(page: Any, fake_server: LiveServer, shoot: Any) -> None:
    fake_server.trainer_args = ["--sleep", "0.05", "--preference"]
    spec = {"name": "dpo-run", "base": "lora_train", "dataset": "demo", "run": True,
            "set": {"training.max_steps": 5, "training.logging_steps": 1, "resources.num_processes": 2}}
    assert httpx.post(f"{fake_server.url}/api/jobs", json=spec, timeout=60).status_code == 201
    deadline = time.monotonic() + 60
    while httpx.get(f"{fake_server.url}/api/jobs/dpo-run", timeout=10).json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    page.goto(f"{fake_server.url}/ui/jobs/dpo-run")
    # The reward margin is drawn next to the loss, every logged step.
    page.wait_for_function("(document.querySelector('#margin-chart')?.dataset.points ?? '') === '5'", timeout=30_000)
    assert page.locator("#margin-block").is_visible() and page.locator("#margin-chart .main-svg").count() > 0
    # Held-out preference accuracy, in words.
    page.wait_for_selector("#pref-result")
    result = page.inner_text("#pref-result")
    assert "On 4 held-out pairs, the model ranked the chosen answer above the rejected one 50% of the time before training and 75% after." in result
    assert "0.01 to 0.42" in result and "Training helped" in result
    assert "Chosen answer preferred, after" in page.inner_text("#metrics")
    # The processes it ran on.
    workers = page.locator("#job-workers")
    assert workers.is_visible()
    assert workers.inner_text() == "Ran on 2 processes on this machine — workers: here (processes 0, 1)."
    assert_no_cli_text(page)
    shoot("job-preference")


def test_one_process_job_says_where_it_ran(page: Any, fake_server: LiveServer) -> None:
    fake_server.trainer_args = ["--sleep", "0.05"]
    spec = {"name": "single", "base": "lora_train", "dataset": "demo", "run": True, "set": {"training.max_steps": 2}}
    assert httpx.post(f"{fake_server.url}/api/jobs", json=spec, timeout=60).status_code == 201
    deadline = time.monotonic() + 60
    while httpx.get(f"{fake_server.url}/api/jobs/single", timeout=10).json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    page.goto(f"{fake_server.url}/ui/jobs/single")
    page.wait_for_function("(document.querySelector('#job-workers')?.textContent ?? '').length > 0")
    assert page.inner_text("#job-workers") == "Ran on this machine, in one process."
    assert page.locator("#margin-block").is_hidden() and page.locator("#pref-result").count() == 0
