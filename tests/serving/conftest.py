"""Fixtures: live model servers (uvicorn in a thread on 127.0.0.1) on the tiny model and on
a LoRA adapter laid out like a finished job's outputs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import serve_in_thread


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve `app` on a free loopback port; stop it (and its engine) on exit."""
    try:
        with serve_in_thread(app) as url:
            yield url
    finally:
        app.state.backend.shutdown()


def build(model: str | None = None, job_dir: Path | None = None, **options: Any) -> Any:
    """A model server app. fp32 unless asked otherwise: these tests compare answers token for
    token with a plain transformers forward pass of the same weights."""
    from nocodetune.serving.runner import ServeOptions, build_app

    options.setdefault("precision", "fp32")
    return build_app(ServeOptions(model=model, job_dir=job_dir, **options))


def served(app: Any) -> tuple[Any, Any]:
    """(model, tokenizer) a transformers-backed app serves."""
    backend = app.state.backend
    return backend.engine.runner.model, backend.vocab.tokenizer


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir: Path) -> Iterator[tuple[str, Any]]:
    app = build(model=str(tiny_model_dir), name="tiny")
    with live_server(app) as url:
        yield url, app


@pytest.fixture(scope="session")
def adapter_job_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jobs/lora_job with resolved.json naming the tiny base and outputs/adapter (random,
    non-zero LoRA weights, so the adapter visibly changes the output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from nocodetune.records.job import ResolvedJob
    from nocodetune.records.schema import JobConfig, ModelSection
    from nocodetune.workspace import JobPaths

    job = JobPaths(tmp_path_factory.mktemp("ws") / "jobs" / "lora_job")
    job.adapter_dir.mkdir(parents=True)
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=64, target_modules="all-linear", init_lora_weights=False))
    peft_model.save_pretrained(job.adapter_dir)
    ResolvedJob(
        name="lora_job",
        created_at=datetime.now(timezone.utc).isoformat(),
        config=JobConfig(method="lora", model=ModelSection(source=str(tiny_model_dir))),
    ).write(job.resolved_json)
    return job.root


def greedy_reference(model: Any, tokenizer: Any, prompt_ids: list[int], max_new_tokens: int) -> str:
    """What plain HF generate answers, one request at a time (the batching must match it)."""
    import torch

    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids], device=model.device), max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0)
    new = [t for t in out[0, len(prompt_ids) :].tolist() if t != tokenizer.eos_token_id]
    return tokenizer.decode(new, skip_special_tokens=True)


def chat_ids(tokenizer: Any, content: str) -> list[int]:
    text = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
