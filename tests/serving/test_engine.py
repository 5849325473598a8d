"""The batching engine on its own: merging requests that arrive mid-generation, and
keeping running requests alive when a new one fails."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from nocodetune.serving.engine import GenerationEngine, SamplingParams, StreamEvent
from tests.live_server import run_async
from tests.serving.conftest import greedy_reference


def make_engine(model: Any, tokenizer: Any, *, max_batch_size: int, stop_at_eos: bool = True) -> GenerationEngine:
    from nocodetune.serving.hf import HFVocabulary, TransformersRunner, _eos_ids

    runner = TransformersRunner(model)
    eos = _eos_ids(model, tokenizer) if stop_at_eos else frozenset()
    return GenerationEngine(runner, HFVocabulary(tokenizer, eos_ids=eos, vocab_size=runner.vocab_size), max_batch_size=max_batch_size)

PROMPTS = ["The quick brown fox jumps", "March", "Classify the sentiment of this review: great product", "0 1 2", "terrible"]


@pytest.fixture(scope="module")
def lively_model(tiny_model_dir: Path) -> tuple[Any, Any]:
    """The tiny model with weights scaled up, so logits differ a lot between positions and
    contexts (a cache or position mistake then shows as a large logits difference)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(6.0)
    return model, AutoTokenizer.from_pretrained(tiny_model_dir)


async def _run(engine: GenerationEngine, ids: list[int], params: SamplingParams, delay: float) -> tuple[str, StreamEvent]:
    await asyncio.sleep(delay)
    handle = engine.submit(ids, params)
    text = ""
    while True:
        event = await handle.next_event()
        if event.kind == "delta":
            text += event.text
        else:
            return text, event


def test_requests_joining_a_running_batch_see_the_logits_of_a_lone_request(lively_model: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Every step's logits, for every request, equal those of a plain forward pass over that
    request alone: padding, position ids and cache merging change nothing."""
    import torch

    from nocodetune.serving import engine as engine_module

    model, tokenizer = lively_model
    seen: dict[int, list[tuple[torch.Tensor, int]]] = {}
    real_sample = engine_module._sample

    def recording_sample(logits: torch.Tensor, params: SamplingParams, generator: Any) -> int:
        token = real_sample(logits, params, generator)
        seen.setdefault(id(params), []).append((logits.clone(), token))
        return token

    monkeypatch.setattr(engine_module, "_sample", recording_sample)
    ids = [tokenizer(p)["input_ids"] for p in PROMPTS]
    params = [SamplingParams(max_new_tokens=12 + 3 * k, temperature=0.9, seed=k) for k in range(len(ids))]
    engine = make_engine(model, tokenizer, max_batch_size=8, stop_at_eos=False)  # every request runs to its own max_new_tokens
    try:

        async def main() -> list[tuple[str, StreamEvent]]:
            # two arrive together (one padded prefill); the rest join a batch whose cache has another length
            delays = [0, 0, 0.01, 0.02, 0.03]
            return await asyncio.gather(*(_run(engine, i, p, d) for d, i, p in zip(delays, ids, params)))

        results = run_async(main())
    finally:
        engine.shutdown()

    for prompt, p, (_, end) in zip(ids, params, results):
        steps = seen[id(p)]
        assert end.kind == "done" and end.completion_tokens == p.max_new_tokens == len(steps)
        tokens = prompt + [t for _, t in steps]
        with torch.inference_mode():
            reference = model(torch.tensor([tokens[:-1]])).logits[0, len(prompt) - 1 :].float()
        torch.testing.assert_close(torch.stack([logits for logits, _ in steps]), reference, atol=1e-4, rtol=1e-4)


def test_a_failing_prefill_fails_only_the_new_request(lively_model: tuple[Any, Any]) -> None:
    model, tokenizer = lively_model

    class RefusesLongPrompts:
        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            if kwargs["input_ids"].shape[1] > 20:
                raise RuntimeError("out of memory (simulated)")
            return self._inner(*args, **kwargs)

        def __getattr__(self, name: str) -> Any:
            return getattr(self._inner, name)

    engine = make_engine(model, tokenizer, max_batch_size=4)
    engine.runner.model = RefusesLongPrompts(model)
    short = tokenizer("March")["input_ids"]
    long = tokenizer(" ".join(PROMPTS * 3))["input_ids"]
    try:

        async def main() -> list[tuple[str, StreamEvent]]:
            return await asyncio.gather(
                _run(engine, short, SamplingParams(max_new_tokens=40, temperature=0), 0),
                _run(engine, long, SamplingParams(max_new_tokens=5, temperature=0), 0.05),
            )

        (short_text, short_end), (_, long_end) = run_async(main())
    finally:
        engine.shutdown()
    assert long_end.kind == "error" and "out of memory" in (long_end.error or "")
    assert short_end.kind == "done"
    assert short_text == greedy_reference(model, tokenizer, short, 40)


def test_sampling_follows_temperature_and_top_p() -> None:
    import torch

    from nocodetune.serving.engine import _sample

    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    generator = torch.Generator().manual_seed(0)
    draws = [_sample(logits, SamplingParams(max_new_tokens=1, temperature=1.0), generator) for _ in range(4000)]
    freq = torch.bincount(torch.tensor(draws), minlength=4).float() / len(draws)
    torch.testing.assert_close(freq, torch.tensor([0.5, 0.3, 0.15, 0.05]), atol=0.03, rtol=0)
    nucleus = {_sample(logits, SamplingParams(max_new_tokens=1, temperature=1.0, top_p=0.75), generator) for _ in range(500)}
    assert nucleus == {0, 1}  # 0.5 + 0.3 reaches 0.75: the two least likely tokens never appear
    assert {_sample(logits, SamplingParams(max_new_tokens=1, temperature=0), generator) for _ in range(20)} == {0}
