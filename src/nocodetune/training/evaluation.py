"""Generate answers for held-out prompts and score them (before and after training).

This is what tells a user whether fine-tuning helped on *their* task: the same held-out
prompts are answered by the starting model and by the trained one, and scored by exact
match (after trimming whitespace) or by containment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nocodetune.data.examples import Example, prompt_and_answer
from nocodetune.data.tokens import render


def generate(
    model: Any, tokenizer: Any, prompts: list[list[dict[str, str]]], max_new_tokens: int, batch_size: int = 16,
    on_progress: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Greedy answers, batched with left padding; `on_progress(done, total)` after each batch."""
    import torch

    was_training = model.training
    model.eval()
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    outputs: list[str] = []
    device = next(model.parameters()).device
    try:
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i : i + batch_size]
            texts = [render(tokenizer, p, add_generation_prompt=True) for p in chunk]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=pad_id)
            for row in out[:, enc["input_ids"].shape[1] :]:
                outputs.append(tokenizer.decode(row, skip_special_tokens=True))
            if on_progress is not None:
                on_progress(len(outputs), len(prompts))
    finally:
        tokenizer.padding_side = side
        if was_training:
            model.train()
    return outputs


def score(output: str, expected: str, metric: str) -> float:
    if metric == "exact_match":
        return float(output.strip() == expected.strip())
    if metric == "contains":
        return float(expected.strip() in output)
    return 0.0


def run_heldout(
    model: Any, tokenizer: Any, examples: list[Example], *, metric: str, limit: int, max_new_tokens: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Generations for up to `limit` held-out examples, with their score (None if metric is 'none')."""
    pairs = [pe for pe in (prompt_and_answer(e) for e in examples[:limit]) if pe is not None]
    if not pairs:
        return {"score": None, "items": []}
    answers = generate(model, tokenizer, [p for p, _ in pairs], max_new_tokens, on_progress=on_progress)
    items = []
    for (prompt, expected), answer in zip(pairs, answers):
        item = {"prompt": prompt[-1]["content"], "expected": expected, "output": answer}
        if metric != "none":
            item["score"] = score(answer, expected, metric)
        items.append(item)
    value = sum(i["score"] for i in items) / len(items) if metric != "none" else None
    return {"score": value, "items": items}
