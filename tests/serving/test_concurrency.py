"""Concurrent clients share one batch; a full queue answers 429; a client that leaves frees its slot."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.live_server import run_async
from tests.serving.conftest import build, chat_ids, greedy_reference, live_server, served

PROMPTS = ["quick brown fox", "Convert the date", "terrible, broke", "great product", "January February", "0 1 2 3 4 5"]


def _metric(url: str, name: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.M)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


class _SlowModel:
    """Delegates to a model but sleeps per forward pass, so generations last long enough to watch."""

    def __init__(self, model: Any, delay: float) -> None:
        self._model, self._delay = model, delay

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self._delay)
        return self._model(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def test_concurrent_clients_are_batched_and_all_answered_correctly(tiny_model_dir: Path) -> None:
    app = build(model=str(tiny_model_dir), name="tiny")
    model, tokenizer = served(app)
    app.state.backend.engine.runner.model = _SlowModel(model, 0.01)  # keep requests overlapping on a fast tiny model
    expected = [greedy_reference(model, tokenizer, chat_ids(tokenizer, p), 24) for p in PROMPTS]

    async def ask_all(url: str) -> list[str]:
        c = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        replies = await asyncio.gather(
            *(c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], max_tokens=24, temperature=0) for p in PROMPTS)
        )
        return [r.choices[0].message.content for r in replies]

    with live_server(app) as url:
        answers = run_async(ask_all(url))
        steps = _metric(url, "nocodetune_batch_size_count")
        single_steps = _metric(url, 'nocodetune_batch_size_bucket{le="1.0"}')
        generated = _metric(url, "nocodetune_generation_tokens_total")
    assert answers == expected  # batching (left padding, merging) changes no answer
    assert steps - single_steps > 0, "no decode step ever held more than one sequence"
    assert generated >= sum(1 for a in answers if a)


def test_full_queue_answers_429_and_disconnect_frees_the_slot(tiny_model_dir: Path) -> None:
    app = build(model=str(tiny_model_dir), name="tiny", max_batch_size=1, max_queue=0)
    runner = app.state.backend.engine.runner
    runner.model = _SlowModel(runner.model, 0.02)
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 400, "temperature": 0}
    with live_server(app) as url:
        with httpx.Client(timeout=30) as http:
            with http.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}) as first:
                next(first.iter_lines())  # the first request now holds the only slot
                busy = http.post(f"{url}/v1/chat/completions", json={**body, "max_tokens": 2})
                assert busy.status_code == 429, busy.text
                assert busy.headers["retry-after"] == "1"
                assert busy.json()["error"]["code"] == "rate_limit_exceeded"
            # the client hung up after one chunk: its slot must free long before 400 tokens (8 s) pass
            deadline = time.monotonic() + 10
            while http.get(f"{url}/health").json()["active"] != 0:
                assert time.monotonic() < deadline, "slot still held after the client disconnected"
                time.sleep(0.05)
            again = http.post(f"{url}/v1/chat/completions", json={**body, "max_tokens": 2})
            assert again.status_code == 200, again.text
        generated = _metric(url, "nocodetune_generation_tokens_total")
        assert generated < 200, f"{generated} tokens generated: the abandoned stream was not stopped"


def test_a_non_streaming_client_that_gives_up_frees_its_slot(tiny_model_dir: Path) -> None:
    app = build(model=str(tiny_model_dir), name="tiny", max_batch_size=1, max_queue=0)
    runner = app.state.backend.engine.runner
    runner.model = _SlowModel(runner.model, 0.02)
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 400, "temperature": 0}
    with live_server(app) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/chat/completions", json=body, timeout=0.5)  # gives up after 0.5 s of ~8 s
        deadline = time.monotonic() + 4  # generating all 400 tokens would take ~8 s
        while httpx.get(f"{url}/health").json()["active"] != 0:
            assert time.monotonic() < deadline, "slot still held after the client went away"
            time.sleep(0.05)
        assert httpx.post(f"{url}/v1/chat/completions", json={**body, "max_tokens": 2}, timeout=30).status_code == 200
