"""Browser-test fixtures: the full API + UI on a free loopback port, and Debian's Chromium.

The browser is confined to 127.0.0.1 (every other host fails to resolve), so a page that
tried to fetch anything from the internet would break visibly instead of leaking.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from tests.live_server import serve_in_thread

FAKE_TRAINER = Path(__file__).resolve().parents[1] / "jobs" / "fake_trainer.py"

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
VIEWPORTS = {"laptop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if not Path(CHROMIUM).exists():
        skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing (apt-get install chromium)")
        for item in items:
            if "browser" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "headless": True,
        "args": [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": VIEWPORTS["laptop"]}


class LiveServer:
    """The whole API (+ UI) for one workspace, served in a thread on 127.0.0.1.

    With `fake_trainer=True` jobs run tests/jobs/fake_trainer.py instead of training;
    `trainer_args` (read at each launch) passes it options such as --hold-file.
    """

    def __init__(self, workspace: Path, *, fake_trainer: bool = False) -> None:
        from nocodetune.api.app import create_app

        self.trainer_args: list[str] = []
        service = None
        if fake_trainer:
            from nocodetune.jobs.service import JobService
            from nocodetune.workspace import Workspace

            service = JobService(Workspace(workspace), command=self._fake_command, poll_s=0.1)
        self.app = create_app(workspace, job_service=service)
        self._serving = serve_in_thread(self.app)
        self.url = ""

    def _fake_command(self, job_dir: Path) -> list[str]:
        return [sys.executable, str(FAKE_TRAINER), str(job_dir), *self.trainer_args]

    def start(self) -> "LiveServer":
        self.url = self._serving.__enter__()
        return self

    def stop(self) -> None:
        self._serving.__exit__(None, None, None)


@pytest.fixture
def ui_workspace(workspace_dir: Path) -> Path:
    from nocodetune.jobs.bootstrap import init_workspace

    init_workspace(workspace_dir)
    return workspace_dir


@pytest.fixture
def live_server(ui_workspace: Path) -> Iterator[LiveServer]:
    server = LiveServer(ui_workspace).start()
    try:
        yield server
    finally:
        stop_model_servers(server)
        server.stop()


@pytest.fixture
def fake_server(ui_workspace: Path) -> Iterator[LiveServer]:
    """The API + UI whose jobs run the fake trainer (seconds, no torch)."""
    server = LiveServer(ui_workspace, fake_trainer=True).start()
    try:
        yield server
    finally:
        stop_model_servers(server)
        server.stop()


def stop_model_servers(server: LiveServer) -> None:
    """Model servers run in their own processes; stop those the test started."""
    try:
        listing = httpx.get(f"{server.url}/api/servers", timeout=5).json()
        items = listing if isinstance(listing, list) else listing.get("items", listing.get("servers", []))
        for s in items:
            httpx.delete(f"{server.url}/api/servers/{s['id']}", timeout=30)
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        pass


@pytest.fixture
def shoot(page: Any) -> Any:
    """shoot(name): full-page screenshots at laptop and phone width into test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def _shoot(name: str) -> None:
        original = page.viewport_size
        for label, size in VIEWPORTS.items():
            page.set_viewport_size(size)
            page.wait_for_timeout(250)  # let the layout and charts settle
            page.screenshot(path=str(SCREENSHOTS / f"{name}-{label}.png"), full_page=True)
        if original:
            page.set_viewport_size(original)

    return _shoot


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@pytest.fixture(autouse=True)
def _capture_failures(request: pytest.FixtureRequest) -> Iterator[None]:
    """On failure, keep a screenshot and the page text next to the screenshots, to see what the user saw."""
    # Asking for the page here makes this teardown run while the page is still open.
    page = request.getfixturevalue("page") if "page" in request.fixturenames else None
    yield
    if page is None or not request.node.stash.get(_FAILED, False):
        return
    folder = SCREENSHOTS.parent / "failures"
    folder.mkdir(parents=True, exist_ok=True)
    name = request.node.name.replace("/", "_")
    try:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
        (folder / f"{name}.txt").write_text(f"{page.url}\n\n{page.inner_text('body')}", encoding="utf-8")
    except Exception:  # noqa: BLE001 - diagnostics must not hide the real failure
        pass
