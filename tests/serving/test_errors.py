"""Bad requests get OpenAI-shaped 4xx errors that the SDK raises as its typed exceptions."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from tests.serving.test_openai_sdk import client


def assert_openai_error(response: httpx.Response, status: int, param: str | None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]
    assert error["param"] == param
    return error


def test_unknown_model_is_404(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    with pytest.raises(openai.NotFoundError) as err:
        client(url).chat.completions.create(model="gpt-4", messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "model_not_found"
    assert "tiny" in err.value.body["message"]  # says what is served


def test_empty_messages_is_400(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    with pytest.raises(openai.BadRequestError) as err:
        client(url).chat.completions.create(model="tiny", messages=[])
    assert err.value.body["param"] == "messages"


def test_max_tokens_over_context_window_is_400(tiny_server: tuple[str, Any]) -> None:
    url, app = tiny_server
    window = app.state.backend.context_window
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": window})
    error = assert_openai_error(r, 400, "max_tokens")
    assert error["code"] == "context_length_exceeded" and str(window) in error["message"]


def test_malformed_json_is_400(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    r = httpx.post(f"{url}/v1/chat/completions", content=b'{"model": "tiny", "messages": [', headers={"content-type": "application/json"})
    assert assert_openai_error(r, 400, None)["code"] == "invalid_json"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "temperature": 5}, "temperature"),
        ({"model": "tiny", "messages": [{"role": "wizard", "content": "hi"}]}, "messages.0.role"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "n": 17}, "n"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "model"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stream": "sometimes"}, "stream"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "logit_bias": {"x": 1}}, "logit_bias"),
        ({"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "top_logprobs": 21, "logprobs": True}, "top_logprobs"),
    ],
)
def test_invalid_fields_name_the_param(tiny_server: tuple[str, Any], body: dict[str, Any], param: str) -> None:
    url, _ = tiny_server
    assert_openai_error(httpx.post(f"{url}/v1/chat/completions", json=body), 400, param)


def test_unknown_route_is_openai_shaped_404(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    assert_openai_error(httpx.get(f"{url}/v1/nothing"), 404, None)


def test_a_web_page_cannot_drive_the_model_server(tiny_server: tuple[str, Any]) -> None:
    """DNS rebinding (a foreign Host) and a cross-site POST from a page the user opens are refused."""
    url, _ = tiny_server
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    rebound = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Host": "attacker.example:80"})
    assert rebound.status_code == 403 and rebound.json()["error"]["type"] == "permission_error"
    cross_site = httpx.post(f"{url}/v1/chat/completions", json=body, headers={"Origin": "https://attacker.example"})
    assert cross_site.status_code == 403
    assert httpx.post(f"{url}/v1/chat/completions", json=body).status_code == 200  # SDKs and curl send neither
