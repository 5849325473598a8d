"""End to end on the embedded default model (SmolLM2-135M-Instruct): slow, real answers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import openai
import pytest

from nocodetune.servers import manager
from nocodetune.workspace import Workspace

pytestmark = pytest.mark.slow

QUESTIONS = ["What is the capital of France?", "Name three colors.", "Write a haiku about the sea.", "Hi", "Translate 'cat' to French."]


def test_default_model_server_answers_and_batches_like_one_by_one(workspace_dir: Path) -> None:
    ws = Workspace(workspace_dir)
    ws.create_layout()
    record = manager.start(ws, "model", background=True)
    try:
        sync = openai.OpenAI(base_url=f"{record.url}/v1", api_key="unused", max_retries=0)
        [model] = [m.id for m in sync.models.list().data]
        assert model == "default"

        def ask(q: str) -> str:
            reply = sync.chat.completions.create(model=model, messages=[{"role": "user", "content": q}], max_tokens=40, temperature=0)
            return reply.choices[0].message.content or ""

        one_by_one = [ask(q) for q in QUESTIONS]
        assert "Paris" in one_by_one[0]

        async def together() -> list[str]:
            client = openai.AsyncOpenAI(base_url=f"{record.url}/v1", api_key="unused", max_retries=0)
            replies = await asyncio.gather(
                *(client.chat.completions.create(model=model, messages=[{"role": "user", "content": q}], max_tokens=40, temperature=0) for q in QUESTIONS)
            )
            return [r.choices[0].message.content or "" for r in replies]

        assert asyncio.run(together()) == one_by_one  # greedy answers do not depend on batching
    finally:
        manager.stop(ws, record.id)
