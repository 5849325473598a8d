"""The llama.cpp backend: chosen for GGUF files, batches like one-by-one, keeps its KV budget,
and `server start model --model PATH.gguf` serves a GGUF file. Skipped (with the reason)
where llama-cpp-python is not installed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from nocodetune.errors import ConfigError
from tests.live_server import run_async
from tests.serving.conftest import build, live_server, need_llamacpp
from tests.serving.test_openai_sdk import client

PROMPTS = ["quick brown fox", "Convert the date", "terrible, broke", "great product", "January February", "0 1 2 3 4 5"]


def _ask_all(url: str, max_tokens: int) -> list[str]:
    async def go() -> list[str]:
        c = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
        replies = await asyncio.gather(
            *(c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], max_tokens=max_tokens, temperature=0) for p in PROMPTS)
        )
        return [r.choices[0].message.content or "" for r in replies]

    return run_async(go())


def test_a_gguf_is_served_by_llama_cpp(llama_server: tuple[str, Any]) -> None:
    url, _ = llama_server
    health = httpx.get(f"{url}/health").json()
    assert health["backend"] == "llama.cpp" and health["precision"] == "gguf (f32)"
    assert health["context_window"] == 512  # the GGUF's trained context (the KV cache holds 4096 cells)
    one_by_one = [
        client(url).chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], max_tokens=16, temperature=0).choices[0].message.content
        for p in PROMPTS
    ]
    assert _ask_all(url, 16) == one_by_one  # sequence ids in one llama_decode batch change no answer


def test_requests_wait_for_kv_cells_instead_of_failing(tiny_gguf: Path) -> None:
    """3 requests × (prompt + 400 tokens) do not fit 1024 cells at once: one waits, all succeed."""
    need_llamacpp()
    with live_server(build(model=str(tiny_gguf), name="tiny", kv_tokens=1024)) as url:
        alone = [
            client(url).chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], max_tokens=400, temperature=0).choices[0].message.content
            for p in PROMPTS[:3]
        ]

        async def together() -> list[str]:
            c = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
            replies = await asyncio.gather(
                *(c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": p}], max_tokens=400, temperature=0) for p in PROMPTS[:3])
            )
            return [r.choices[0].message.content or "" for r in replies]

        assert run_async(together()) == alone


def test_backend_choice(tiny_gguf: Path, tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nocodetune.serving import llamacpp
    from nocodetune.serving.runner import ServeOptions, choose_backend, load_backend

    monkeypatch.setattr(llamacpp, "available", lambda: True)
    assert choose_backend(ServeOptions(model="x.gguf"), is_gguf=True) == "llama.cpp"
    assert choose_backend(ServeOptions(model="default"), is_gguf=True, embedded=True) == "transformers"  # served as jobs train on it
    assert choose_backend(ServeOptions(model="default", backend="llama.cpp"), is_gguf=True, embedded=True) == "llama.cpp"
    assert choose_backend(ServeOptions(model="dir"), is_gguf=False) == "transformers"
    assert choose_backend(ServeOptions(model="x.gguf", backend="transformers"), is_gguf=True) == "transformers"
    with pytest.raises(ConfigError) as err:
        choose_backend(ServeOptions(model="dir", backend="llama.cpp"), is_gguf=False)
    assert err.value.field == "backend"
    monkeypatch.setattr(llamacpp, "available", lambda: False)
    assert choose_backend(ServeOptions(model="x.gguf"), is_gguf=True) == "transformers"  # GGUF goes through the safetensors conversion
    with pytest.raises(ConfigError) as err:
        choose_backend(ServeOptions(model="x.gguf", backend="llama.cpp"), is_gguf=True)
    assert err.value.field == "backend" and "llamacpp" in (err.value.hint or "")
    monkeypatch.undo()
    need_llamacpp()
    with pytest.raises(ConfigError) as err:
        load_backend(ServeOptions(model=str(tiny_gguf), precision="int8"))
    assert err.value.field == "precision"


def test_server_start_model_serves_a_gguf_file(tiny_gguf: Path, workspace_dir: Path) -> None:
    """What `nocodetune server start model --model PATH.gguf --background` does."""
    need_llamacpp()
    from nocodetune.servers import manager
    from nocodetune.workspace import Workspace

    ws = Workspace(workspace_dir)
    ws.create_layout()
    record = manager.start(ws, "model", model=str(tiny_gguf), background=True)
    try:
        assert httpx.get(f"{record.url}/health").json()["backend"] == "llama.cpp"
        sdk = openai.OpenAI(base_url=f"{record.url}/v1", api_key="unused", max_retries=0)
        [name] = [m.id for m in sdk.models.list().data]
        assert name == "tiny"
        assert sdk.chat.completions.create(model=name, messages=[{"role": "user", "content": "hi"}], max_tokens=4).choices[0].finish_reason in ("stop", "length")
    finally:
        manager.stop(ws, record.id)
