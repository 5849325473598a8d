"""/docs and /redoc load everything from this server: blank offline before, and they contacted a CDN."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from nocodetune.api.app import create_app
from nocodetune.workspace import Workspace
from tests.live_server import serve_in_thread
from tests.ui.conftest import CHROMIUM, browser_context_args, browser_type_launch_args  # noqa: F401 - the confined Chromium

URL_RE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']|url:\s*["']([^"']+)["']|https?://[^\s"'<>)]+""")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_reference_only_this_server(api_ws: Workspace, page: str) -> None:
    with TestClient(create_app(api_ws)) as client:
        html = client.get(page).text
        urls = [m.group(1) or m.group(2) or m.group(0) for m in URL_RE.finditer(html)]
        assert urls, html
        for url in urls:
            parts = urlsplit(url)
            assert not parts.netloc or parts.hostname == "127.0.0.1", f"{page} references {url}"
            if url.startswith("/") and not url.startswith("/openapi"):
                resp = client.get(url)
                assert resp.status_code == 200 and len(resp.content) > 1000, url


def test_docs_asset_route_serves_only_its_assets(api_ws: Workspace) -> None:
    with TestClient(create_app(api_ws)) as client:
        assert client.get("/docs-assets/swagger-ui-bundle.js").headers["content-type"].startswith("application/javascript")
        for bad in ("../core.py", "..%2Fcore.py", "index.html"):
            assert client.get(f"/docs-assets/{bad}").status_code == 404


@pytest.mark.browser
def test_swagger_ui_renders_offline_in_a_browser(api_ws: Workspace, page) -> None:
    """Chromium can resolve nothing but 127.0.0.1: the page must still render, and ask nothing of anyone else."""
    if not __import__("pathlib").Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    with serve_in_thread(create_app(api_ws)) as url:
        page.goto(f"{url}/docs")
        page.wait_for_selector(".swagger-ui .info", timeout=30_000)
        assert "NoCodeTune" in page.inner_text(".swagger-ui .info")
        assert page.evaluate("typeof SwaggerUIBundle") == "function"
        page.wait_for_selector('.opblock-post .opblock-summary-path[data-path="/api/files"]', timeout=30_000)
    foreign = [u for u in requested if urlsplit(u).hostname not in ("127.0.0.1", None) and not u.startswith("data:")]
    assert not foreign, foreign
