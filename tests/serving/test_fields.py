"""No field is ever ignored: each backend refuses, by name, every field it does not honour,
and the SDK raises BadRequestError at once instead of retrying."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from nocodetune.serving.fields import BACKEND_FIELDS, fields_markdown
from tests.serving.test_openai_sdk import client

ROOT = Path(__file__).resolve().parents[2]
HI = [{"role": "user", "content": "hi"}]

# A value for every field a backend refuses outright, or a value outside what it honours.
REFUSED_VALUES: dict[str, dict[str, Any]] = {
    "chat": {
        "audio": {"voice": "alloy", "format": "mp3"},
        "prediction": {"type": "content", "content": "hello"},
        "reasoning_effort": "low",
        "verbosity": "low",
        "web_search_options": {},
        "functions": [{"name": "f", "parameters": {"type": "object"}}],
        "function_call": "auto",
        "moderation": {"model": "omni-moderation-latest"},
        "prompt_cache_key": "k1",
        "prompt_cache_options": {"mode": "explicit"},
        "prompt_cache_retention": "24h",
        "metadata": {"team": "a"},
        "store": True,
        "service_tier": "flex",
        "modalities": ["text", "audio"],
        "response_format": {"type": "grammar", "grammar": "root ::= 'a'"},
        "stream_options": {"include_obfuscation": True},
        "tools": [{"type": "custom", "custom": {"name": "x"}}],
        "tool_choice": {"type": "custom", "custom": {"name": "x"}},
    },
    "completions": {
        "suffix": "the end",
        "stream_options": {"include_obfuscation": True},
    },
    "embeddings": {
        "encoding_format": "int8",
    },
    "message": {
        "refusal": "I cannot",
        "audio": {"id": "audio_1"},
        "function_call": {"name": "f", "arguments": "{}"},
    },
}


def _not_honoured(backend: str, endpoint: str) -> list[str]:
    return sorted(k for k, r in BACKEND_FIELDS[backend][endpoint].items() if r.status in ("refused", "partial"))


def test_every_refused_or_partial_field_has_a_test_value() -> None:
    """Adding a refusal to a table without testing it fails here."""
    for backend in BACKEND_FIELDS:
        for endpoint in ("chat", "completions", "embeddings", "message"):
            missing = set(k for k in _not_honoured(backend, endpoint) if BACKEND_FIELDS[backend][endpoint][k].status == "refused") - set(REFUSED_VALUES[endpoint])
            assert not missing, f"{backend} {endpoint}: no test value for {sorted(missing)}"


def _requests_400(url: str, route: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf'^nocodetune_requests_total{{endpoint="{re.escape(route)}",status="400"}} ([0-9.]+)$', text, re.M)
    return float(match.group(1)) if match else 0.0


def test_each_refused_chat_field_is_a_400_naming_it(any_server: tuple[str, Any]) -> None:
    url, app = any_server
    backend = app.state.backend.name
    sdk = client(url)
    for field, value in REFUSED_VALUES["chat"].items():
        if field not in BACKEND_FIELDS[backend]["chat"]:
            continue
        extra: dict[str, Any] = {field: value}
        if field == "tool_choice":
            extra["tools"] = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
        with pytest.raises(openai.BadRequestError) as err:
            sdk.chat.completions.create(model="tiny", messages=HI, max_tokens=2, extra_body=extra)
        assert err.value.status_code == 400
        assert err.value.body["param"] == field, (field, err.value.body)
        assert backend in err.value.body["message"]


def test_each_refused_completion_and_embedding_field_is_a_400_naming_it(any_server: tuple[str, Any]) -> None:
    url, _ = any_server
    sdk = client(url)
    for field, value in REFUSED_VALUES["completions"].items():
        with pytest.raises(openai.BadRequestError) as err:
            sdk.completions.create(model="tiny", prompt="March", max_tokens=2, extra_body={field: value})
        assert err.value.body["param"] == field
    for field, value in REFUSED_VALUES["embeddings"].items():
        r = httpx.post(f"{url}/v1/embeddings", json={"model": "tiny", "input": "hi", field: value})
        assert r.status_code == 400 and r.json()["error"]["param"] == field


def test_each_refused_message_field_is_a_400_naming_it(any_server: tuple[str, Any]) -> None:
    url, _ = any_server
    for field, value in REFUSED_VALUES["message"].items():
        messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok", field: value}, {"role": "user", "content": "go"}]
        r = httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", "messages": messages, "max_tokens": 2})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == f"messages.1.{field}"


def test_unknown_fields_are_refused_not_dropped(any_server: tuple[str, Any]) -> None:
    url, _ = any_server
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", "messages": HI, "max_tokens": 2, "top_k": 5})
    assert r.status_code == 400 and r.json()["error"]["param"] == "top_k"
    assert r.json()["error"]["code"] == "unknown_parameter"
    r = httpx.post(f"{url}/v1/completions", json={"model": "tiny", "prompt": "a", "max_tokens": 2, "min_p": 0.1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "min_p"


def test_model_dependent_refusals_name_the_field(tiny_server: tuple[str, Any]) -> None:
    """The tiny model's ChatML template renders no tools, no message names, no tool calls."""
    url, _ = tiny_server
    sdk = client(url)
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="tiny", messages=HI, tools=tools)
    assert err.value.body["param"] == "tools" and "tool support" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "hi", "name": "ann"}])
    assert err.value.body["param"] == "messages.0.name"
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="tiny", messages=[*HI, {"role": "assistant", "tool_calls": [call]}, {"role": "tool", "tool_call_id": "call_1", "content": "1"}])
    assert err.value.body["param"] == "messages.1.tool_calls"
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="tiny", messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}])
    assert err.value.body["param"] == "messages.0.content"
    with pytest.raises(openai.BadRequestError) as err:
        sdk.chat.completions.create(model="tiny", messages=HI, top_logprobs=2)
    assert err.value.body["param"] == "top_logprobs"
    with pytest.raises(openai.BadRequestError) as err:
        sdk.embeddings.create(model="tiny", input="hi", dimensions=8)
    assert err.value.body["param"] == "dimensions"
    with pytest.raises(openai.BadRequestError) as err:
        sdk.completions.create(model="tiny", prompt="a", echo=True, logprobs=1, max_tokens=2)
    assert err.value.body["param"] == "echo"


def test_a_refused_request_is_not_retried_by_the_sdk(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    before = _requests_400(url, "/v1/chat/completions")
    patient = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=3)
    r = httpx.post(f"{url}/v1/chat/completions", json={"model": "tiny", "messages": HI, "audio": {"voice": "alloy"}})
    assert r.headers["x-should-retry"] == "false"
    with pytest.raises(openai.BadRequestError):
        patient.chat.completions.create(model="tiny", messages=HI, extra_body={"audio": {"voice": "alloy"}})
    assert _requests_400(url, "/v1/chat/completions") == before + 2  # the raw request and exactly one from the SDK


def test_the_docs_hold_the_field_tables() -> None:
    docs = (ROOT / "docs" / "serving.md").read_text(encoding="utf-8")
    assert fields_markdown() in docs, "docs/serving.md is out of date: paste serving.fields.fields_markdown() into it"
