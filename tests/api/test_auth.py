"""The API token: required on /api when set, and for any non-loopback bind."""

from __future__ import annotations

import httpx
import pytest

from nocodetune.api.app import create_app, serve_api
from nocodetune.api.auth import is_loopback
from nocodetune.errors import NocodetuneError
from tests.api.conftest import live_server


def test_token_guards_every_api_route_but_not_health(api_ws):
    with live_server(create_app(api_ws, ("jobs",), api_token="s3cret")) as url, httpx.Client(base_url=url) as client:
        assert client.get("/health").status_code == 200
        missing = client.get("/api/jobs")
        assert missing.status_code == 401 and missing.json()["field"] == "Authorization"
        assert missing.headers["www-authenticate"] == "Bearer"
        assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/api/jobs", json={"name": "x"}, headers={"Authorization": "Basic s3cret"}).status_code == 401
        assert not api_ws.job("x").root.exists()
        ok = client.get("/api/jobs", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "items" in ok.json()


def test_token_comes_from_the_environment(api_ws, monkeypatch):
    monkeypatch.setenv("NOCODETUNE_API_TOKEN", "from-env")
    with live_server(create_app(api_ws, ("jobs",))) as url, httpx.Client(base_url=url) as client:
        assert client.get("/api/bases").status_code == 401
        assert client.get("/api/bases", headers={"Authorization": "Bearer from-env"}).status_code == 200


def test_without_a_token_the_api_is_open_on_loopback(fake_api):
    url, _ = fake_api
    assert httpx.get(f"{url}/api/jobs").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_serve_api_refuses_a_public_host_without_a_token(api_ws, host):
    with pytest.raises(NocodetuneError, match="without a token") as info:
        serve_api(api_ws, host=host, port=1)
    assert info.value.field == "host"


def test_loopback_detection():
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.8.0.1", "::1", "localhost", "[::1]"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "10.0.0.1", "::", "my-host"))
