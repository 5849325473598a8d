"""Browser attacks on the loopback API: DNS rebinding (foreign Host) and cross-site requests (Origin, CSRF).

Against a real uvicorn server on 127.0.0.1, because the Host rule compares the header
with the address the connection arrived at, which only a real socket gives.
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from nocodetune.api.app import create_app
from nocodetune.http_guard import CSRF_COOKIE, BrowserGuardMiddleware
from nocodetune.workspace import Workspace
from tests.live_server import serve_in_thread as live_server

CSV = b"prompt,completion\nhi,there\nhow,are you\n"


@pytest.fixture
def api(api_ws: Workspace):
    with live_server(create_app(api_ws)) as url:
        yield url, int(url.rsplit(":", 1)[1])


def upload(url: str, name: str, headers: dict[str, str] | None = None, cookies: dict[str, str] | None = None) -> httpx.Response:
    """The request a hostile page can make without a preflight: a multipart form POST."""
    return httpx.post(f"{url}/api/files", files={"file": ("x.csv", CSV, "text/csv")}, data={"name": name}, headers=headers or {}, cookies=cookies)


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:{port}", "127.0.0.1:1", "localhost.attacker.example:{port}", "[::2]:{port}", "", "a b"])
def test_a_foreign_host_is_refused_on_every_route(api, api_ws: Workspace, host: str) -> None:
    url, port = api
    header = host.format(port=port)
    for method, path in (("GET", "/api/jobs"), ("GET", "/api/files/sums/versions/1/download"), ("GET", "/ui/jobs"), ("GET", "/health"), ("DELETE", "/api/files/sums")):
        resp = httpx.request(method, f"{url}{path}", headers={"Host": header})
        assert resp.status_code == 403, (method, path, resp.text)
        assert resp.json()["error"] == "Forbidden" and "Host" in resp.json()["message"]
        assert "prompt" not in resp.text
    assert (api_ws.files / "sums").is_dir()


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "LOCALHOST:{port}", "localhost.:{port}"])
def test_loopback_names_with_the_right_port_are_accepted(api, host: str) -> None:
    url, port = api
    assert httpx.get(f"{url}/api/jobs", headers={"Host": host.format(port=port)}).status_code == 200


def test_configured_public_host_is_accepted(api_ws: Workspace) -> None:
    with live_server(create_app(api_ws, allowed_hosts=["tune.example.org", "proxy.example:8443"])) as url:
        assert httpx.get(f"{url}/api/jobs", headers={"Host": "tune.example.org"}).status_code == 200
        assert httpx.get(f"{url}/api/jobs", headers={"Host": "proxy.example:8443"}).status_code == 200
        assert httpx.get(f"{url}/api/jobs", headers={"Host": "proxy.example:9999"}).status_code == 403


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://attacker.example"},
        {"Origin": "null"},
        {"Origin": "http://127.0.0.1:1"},  # another local service
        {"Origin": "http://127.0.0.1:{port}.attacker.example"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Origin": "http://attacker.example", "Authorization": "Bearer anything"},
    ],
    ids=["foreign", "null", "other-port", "lookalike", "sec-fetch-cross-site", "foreign-with-bearer"],
)
def test_cross_site_state_changes_are_refused_and_change_nothing(api, api_ws: Workspace, headers: dict[str, str]) -> None:
    url, port = api
    headers = {k: v.format(port=port) for k, v in headers.items()}
    resp = upload(url, "planted", headers)
    assert resp.status_code == 403, resp.text
    assert not (api_ws.files / "planted").exists()
    assert httpx.delete(f"{url}/api/files/sums", headers=headers).status_code == 403
    assert httpx.post(f"{url}/api/jobs/demo_job/run", headers=headers).status_code == 403
    assert (api_ws.files / "sums").is_dir()


def test_the_ui_gets_a_samesite_strict_csrf_cookie_and_must_echo_it(api, api_ws: Workspace) -> None:
    url, port = api
    page = httpx.get(f"{url}/ui/datasets")
    cookie = page.headers["set-cookie"]
    assert cookie.startswith(f"{CSRF_COOKIE}=") and "SameSite=Strict" in cookie and "Path=/" in cookie
    token = page.cookies[CSRF_COOKIE]
    assert "set-cookie" not in httpx.get(f"{url}/api/jobs").headers  # JSON routes do not set it
    same_origin = {"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}
    without = upload(url, "ui_upload", same_origin, cookies={CSRF_COOKIE: token})
    assert without.status_code == 403 and "CSRF" in without.json()["message"]
    wrong = upload(url, "ui_upload", {**same_origin, "X-CSRF-Token": "x" * 43}, cookies={CSRF_COOKIE: token})
    assert wrong.status_code == 403
    ok = upload(url, "ui_upload", {**same_origin, "X-CSRF-Token": token}, cookies={CSRF_COOKIE: token})
    assert ok.status_code == 201, ok.text
    assert (api_ws.files / "ui_upload" / "v1").is_dir()


def test_clients_that_are_not_browsers_still_work(api, api_ws: Workspace) -> None:
    url, _ = api
    assert upload(url, "from_curl").status_code == 201  # no Origin, no Sec-Fetch-*: curl, the SDKs, scripts
    assert httpx.delete(f"{url}/api/files/from_curl").status_code == 200


def test_a_bearer_token_replaces_the_csrf_token(api_ws: Workspace) -> None:
    with live_server(create_app(api_ws, api_token="s3cret")) as url:
        port = url.rsplit(":", 1)[1]
        headers = {"Origin": f"http://localhost:{port}", "Sec-Fetch-Site": "same-origin", "Authorization": "Bearer s3cret"}
        assert upload(url, "with_token", headers).status_code == 201


def test_the_guard_protects_an_app_without_pages() -> None:
    """What the model server uses: Host and Origin checks, no CSRF cookie."""
    app = FastAPI()

    @app.post("/v1/chat/completions")
    def chat() -> dict:
        return {"ok": True}

    app.add_middleware(BrowserGuardMiddleware, csrf=False)
    with live_server(app) as url:
        port = url.rsplit(":", 1)[1]
        assert httpx.post(f"{url}/v1/chat/completions").json() == {"ok": True}
        assert httpx.post(f"{url}/v1/chat/completions", headers={"Origin": f"http://127.0.0.1:{port}", "Sec-Fetch-Site": "same-origin"}).status_code == 200
        assert httpx.post(f"{url}/v1/chat/completions", headers={"Origin": "http://attacker.example"}).status_code == 403
        assert httpx.post(f"{url}/v1/chat/completions", headers={"Host": "attacker.example"}).status_code == 403
