"""Compare runs: pick jobs on the Jobs page, see their loss and learning-rate curves on one
chart, preference scores for DPO-style runs, their results, and the settings that differ."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.ui.conftest import LiveServer

pytestmark = pytest.mark.browser


def run_job(server: LiveServer, name: str, **settings: Any) -> None:
    spec = {"name": name, "base": "lora_train", "dataset": "demo", "run": True, "set": {"training.logging_steps": 1, **settings}}
    assert httpx.post(f"{server.url}/api/jobs", json=spec, timeout=60).status_code == 201
    deadline = time.monotonic() + 30
    while httpx.get(f"{server.url}/api/jobs/{name}", timeout=10).json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_compare_two_runs(page: Any, fake_server: LiveServer, shoot: Any) -> None:
    fake_server.trainer_args = ["--sleep", "0.02", "--eval"]
    run_job(fake_server, "small-lr", **{"training.max_steps": 4, "training.learning_rate": 0.0001})
    fake_server.trainer_args = ["--sleep", "0.02", "--eval", "--preference"]
    run_job(fake_server, "big-lr", **{"training.max_steps": 6, "training.learning_rate": 0.001})

    page.goto(f"{fake_server.url}/ui/jobs")
    page.wait_for_selector('#jobs-table tr[data-job="big-lr"]')
    assert page.get_attribute("#compare-btn", "aria-disabled") == "true"
    page.check('#jobs-table tr[data-job="small-lr"] input.pick')
    page.check('#jobs-table tr[data-job="big-lr"] input.pick')
    assert page.get_attribute("#compare-btn", "aria-disabled") == "false"
    page.click("#compare-btn")
    page.wait_for_url("**/ui/compare?jobs=*")

    page.wait_for_selector("#cmp-diff table")
    # training and evaluation loss of each job on one chart, every logged step drawn
    page.wait_for_function("document.querySelector('#cmp-loss').dataset.traces === '4'")
    points = page.eval_on_selector_all("#cmp-loss .scatterlayer .trace", "ts => ts.map(t => t.querySelectorAll('.points path').length)")
    assert sorted(points) == [1, 1, 4, 6]
    assert page.locator("#cmp-lr .scatterlayer .trace").count() == 2
    assert page.locator("#cmp-pref-card").is_visible()  # only big-lr logged preference figures, and it shows
    diff = {row.get_attribute("data-key"): row.inner_text() for row in page.locator("#cmp-diff tr[data-key]").all()}
    assert set(diff) == {"training.max_steps", "training.learning_rate"}
    assert "Learning rate" in diff["training.learning_rate"] and "0.001" in diff["training.learning_rate"]
    assert "Training loss (final)" in page.inner_text("#cmp-results")
    shoot("compare")

    # untick one: the selection is in the URL, and one job alone is not compared
    page.uncheck('#job-picks input[value="small-lr"]')
    page.wait_for_function("!location.search.includes('small-lr')")
    page.wait_for_selector("text=Tick at least two jobs")

    # the job page shows the learning rate and the preference scores too
    page.goto(f"{fake_server.url}/ui/jobs/big-lr")
    page.wait_for_selector('#job-status [data-status="succeeded"]')
    page.wait_for_selector("#pref-summary:not([hidden])")
    page.click("#more-charts summary")
    page.wait_for_selector("#lr-chart .scatterlayer .trace")
    assert page.locator("#pref-chart .scatterlayer .trace").count() == 4
