"""/metrics: bounded labels (route templates, one label for unknown URLs), and the token
rule off loopback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import build, live_server


def _endpoints(url: str, headers: dict[str, str] | None = None) -> set[str]:
    text = httpx.get(f"{url}/metrics", headers=headers or {}).text
    return set(re.findall(r'^nocodetune_requests_total\{endpoint="([^"]*)"', text, re.M))


def test_request_labels_are_route_templates_and_unknown_urls_fold_into_one(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    for path in ("/v1/models/tiny", "/v1/models/some/other/model", "/v1/nothing-here-1", "/v1/nothing-here-2", "/wp-admin/x.php", "/health"):
        httpx.get(f"{url}{path}")
    labels = _endpoints(url)
    assert {"/v1/models/{model_id:path}", "unmatched", "/health"} <= labels
    assert not any("nothing-here" in label or "wp-admin" in label or "some/other" in label for label in labels), labels


def test_metrics_need_the_token_off_loopback(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOCODETUNE_API_TOKEN", "s3cret")
    public = build(model=str(tiny_model_dir), name="tiny", host="0.0.0.0")  # the test still listens on 127.0.0.1
    with live_server(public) as url:
        refused = httpx.get(f"{url}/metrics")
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{url}/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.get(f"{url}/health").status_code == 200  # probes need no token
    local = build(model=str(tiny_model_dir), name="tiny", host="127.0.0.1")
    with live_server(local) as url:
        assert httpx.get(f"{url}/metrics").status_code == 200  # a local scraper needs no token
        assert httpx.get(f"{url}/v1/models").status_code == 401  # /v1 keeps the token rule
