"""A running job seen in the browser: every logged step on the chart, an ETA that counts
down between events, heartbeats while a step runs, the log in plain words, and the
outputs a person wants (hidden working files left out). Jobs run the fake trainer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.ui.conftest import LiveServer

pytestmark = pytest.mark.browser

DRAWN_POINTS = "document.querySelectorAll('#loss-chart .scatterlayer .trace:first-child .points path').length"


def create_job(server: LiveServer, name: str, steps: int, **extra: Any) -> None:
    spec = {"name": name, "base": "lora_train", "dataset": "demo",
            "set": {"training.max_steps": steps, "training.logging_steps": 1, **extra}}
    resp = httpx.post(f"{server.url}/api/jobs", json=spec, timeout=60)
    assert resp.status_code == 201, resp.text


def logged_steps(server: LiveServer, name: str) -> list[int]:
    history = httpx.get(f"{server.url}/api/jobs/{name}/metrics", timeout=10).json()["history"]
    return [h["step"] for h in history if "loss" in h]


def test_chart_draws_every_logged_step_while_the_job_runs(page: Any, fake_server: LiveServer, tmp_path: Path, shoot: Any) -> None:
    hold = tmp_path / "hold"
    hold.touch()
    fake_server.trainer_args = ["--sleep", "0.05", "--hold-file", str(hold), "--hold-from", "3", "--heartbeat", "0.3", "--eval"]
    create_job(fake_server, "live", 8)
    page.goto(f"{fake_server.url}/ui/jobs/live")
    page.wait_for_selector('#job-status [data-status="created"]')
    page.click('#job-actions [data-action="run"]')

    # Held after step 3: the chart shows exactly the steps the trainer logged, no fewer.
    page.wait_for_function(f"{DRAWN_POINTS} === 3", timeout=30_000)
    assert logged_steps(fake_server, "live") == [1, 2, 3]
    assert page.get_attribute("#job-status .badge", "data-status") == "running"

    # No new step for a while: the ETA still counts down and heartbeats say the step is being worked on.
    page.wait_for_function("(document.querySelector('#job-stage')?.textContent ?? '').includes('still working')", timeout=15_000)
    first = page.text_content('[data-stat="eta"]')
    assert first.startswith("about ")
    page.wait_for_function(f"(document.querySelector('[data-stat=\"eta\"]')?.textContent ?? '') !== {first!r}", timeout=10_000)
    assert page.text_content('[data-stat="step"]') == "3 of 8"
    assert "Step 3/8" in page.inner_text("#log-readable") and "loss" in page.inner_text("#log-readable")
    assert "Before training: 2 of 2 held-out answers generated" in page.inner_text("#log-readable")
    shoot("job-running")

    hold.unlink()
    page.wait_for_selector('#job-status [data-status="succeeded"]', timeout=30_000)
    page.wait_for_function(f"{DRAWN_POINTS} === 8", timeout=10_000)
    assert logged_steps(fake_server, "live") == list(range(1, 9))
    assert page.locator("#loss-chart .scatterlayer .trace").count() == 2  # the evaluation point too
    page.wait_for_selector("#outputs a")
    outputs = page.inner_text("#outputs")
    assert "metrics.json" in outputs and ".heldout_before" not in outputs

    # The raw log is one click away, and back.
    page.click("#raw-toggle")
    page.wait_for_function("(document.querySelector('#log-raw')?.textContent ?? '').includes('fake trainer run 1')")
    assert page.locator("#log-readable").is_hidden()
    page.click("#raw-toggle")
    assert page.locator("#log-readable").is_visible()
    shoot("job-finished")

    # A reload draws the same curve from the history.
    page.reload()
    page.wait_for_function(f"{DRAWN_POINTS} === 8", timeout=10_000)


def test_hidden_outputs_are_not_listed(fake_server: LiveServer) -> None:
    create_job(fake_server, "quiet", 2)
    assert httpx.post(f"{fake_server.url}/api/jobs/quiet/run", timeout=30).status_code == 202
    import time

    deadline = time.monotonic() + 30
    while httpx.get(f"{fake_server.url}/api/jobs/quiet", timeout=10).json()["status"] != "succeeded":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    paths = [f["path"] for f in httpx.get(f"{fake_server.url}/api/jobs/quiet/outputs", timeout=10).json()]
    assert "metrics.json" in paths and not any(p.startswith(".") or "/." in p for p in paths)
    # still on disk: hidden is not deleted
    assert (Path(httpx.get(f"{fake_server.url}/health").json()["workspace"]) / "jobs" / "quiet" / "outputs" / ".heldout_before.json").is_file()
