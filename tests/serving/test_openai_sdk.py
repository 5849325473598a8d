"""The model server driven by the official `openai` SDK, as a user's code would."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.serving.conftest import build, chat_ids, greedy_reference, live_server, served


def client(url: str, **kw: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{url}/v1", api_key=kw.pop("api_key", "unused"), max_retries=0, **kw)


def test_models_lists_the_served_model(tiny_server: tuple[str, Any]) -> None:
    url, app = tiny_server
    models = client(url).models.list().data
    assert [m.id for m in models] == ["tiny"]
    assert httpx.get(f"{url}/health").json()["status"] == "ok"


def test_chat_completion_matches_plain_generate(tiny_server: tuple[str, Any]) -> None:
    url, app = tiny_server
    model, tokenizer = served(app)
    reply = client(url).chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Convert the date"}], max_tokens=12, temperature=0)
    ids = chat_ids(tokenizer, "Convert the date")
    assert reply.object == "chat.completion"
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == greedy_reference(model, tokenizer, ids, 12)
    assert reply.usage.prompt_tokens == len(ids)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    if reply.choices[0].finish_reason == "length":
        assert reply.usage.completion_tokens == 12


def test_streaming_chat_yields_the_same_text_and_usage(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    messages = [{"role": "system", "content": "answer"}, {"role": "user", "content": "quick brown fox"}]
    whole = client(url).chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0)
    chunks = list(
        client(url).chat.completions.create(model="tiny", messages=messages, max_tokens=10, temperature=0, stream=True, stream_options={"include_usage": True})
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == [whole.choices[0].finish_reason]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_stream_ends_with_done_marker(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=30) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]"
    assert all(json.loads(e[6:])["object"] == "chat.completion.chunk" for e in events[:-1])


def test_completions_with_stop_string(tiny_server: tuple[str, Any]) -> None:
    url, app = tiny_server
    model, tokenizer = served(app)
    ids = tokenizer("March 5", add_special_tokens=False)["input_ids"]
    full = greedy_reference(model, tokenizer, ids, 20)
    plain = client(url).completions.create(model="tiny", prompt="March 5", max_tokens=20, temperature=0)
    assert plain.choices[0].text == full
    stop = full[3:6]
    assert stop, "reference output too short to pick a stop string"
    stopped = client(url).completions.create(model="tiny", prompt="March 5", max_tokens=20, temperature=0, stop=[stop])
    assert stopped.choices[0].text == full[: full.index(stop)]
    assert stopped.choices[0].finish_reason == "stop"


def test_seed_makes_sampling_reproducible(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    ask = dict(model="tiny", messages=[{"role": "user", "content": "sentiment"}], max_tokens=16, temperature=1.5, top_p=0.95)
    first = client(url).chat.completions.create(seed=7, **ask).choices[0].message.content
    again = client(url).chat.completions.create(seed=7, **ask).choices[0].message.content
    others = {client(url).chat.completions.create(seed=s, **ask).choices[0].message.content for s in (1, 2, 3)}
    assert first == again
    assert len(others | {first}) > 1


def test_lora_adapter_job_is_served_on_its_base(adapter_job_dir: Path, tiny_model_dir: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    ids = chat_ids(tokenizer, "Classify the sentiment")
    base_text = greedy_reference(base, tokenizer, ids, 12)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), str(adapter_job_dir / "outputs" / "adapter")).eval()
    tuned_text = greedy_reference(tuned, tokenizer, ids, 12)
    assert tuned_text != base_text, "the test adapter should change the output"

    app = build(job_dir=adapter_job_dir)
    with live_server(app) as url:
        c = client(url)
        assert [m.id for m in c.models.list().data] == ["lora_job"]
        reply = c.chat.completions.create(model="lora_job", messages=[{"role": "user", "content": "Classify the sentiment"}], max_tokens=12, temperature=0)
        streamed = "".join(
            ch.choices[0].delta.content or ""
            for ch in c.chat.completions.create(
                model="lora_job", messages=[{"role": "user", "content": "Classify the sentiment"}], max_tokens=12, temperature=0, stream=True
            )
            if ch.choices
        )
    assert reply.choices[0].message.content == tuned_text
    assert streamed == tuned_text


def test_api_token_is_required_when_set(tiny_model_dir: Path) -> None:
    from nocodetune.records.schema import ModelSection
    from nocodetune.serving.hf import transformers_backend
    from nocodetune.serving.loader import load_model
    from nocodetune.serving.openai_app import create_app

    loaded = load_model(ModelSection(source=str(tiny_model_dir)))
    app = create_app(transformers_backend(loaded.model, loaded.tokenizer), model_name="tiny", api_token="s3cret")
    with live_server(app) as url:
        with pytest.raises(openai.AuthenticationError) as err:
            client(url, api_key="wrong").models.list()
        assert err.value.body["code"] == "invalid_api_key"
        assert [m.id for m in client(url, api_key="s3cret").models.list().data] == ["tiny"]
        assert httpx.get(f"{url}/health").status_code == 200  # probes need no token


def test_streaming_completion_matches_non_streaming(tiny_server: tuple[str, Any]) -> None:
    url, _ = tiny_server
    whole = client(url).completions.create(model="tiny", prompt="The quick brown", max_tokens=8, temperature=0)
    chunks = list(client(url).completions.create(model="tiny", prompt="The quick brown", max_tokens=8, temperature=0, stream=True))
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == [whole.choices[0].finish_reason]
