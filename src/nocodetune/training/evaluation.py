"""Generate answers for held-out prompts and score them (before and after training).

This is what tells a user whether fine-tuning helped on *their* task: the same held-out
prompts are answered by the starting model and by the trained one, and scored by exact
match (after trimming whitespace) or by containment. For preference pairs (DPO, ORPO) it
also measures preference accuracy: how often the model finds the chosen answer more
likely than the rejected one.
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


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def pair_sequences(example: Example, tokenizer: Any, max_length: int) -> list[tuple[list[int], int]]:
    """(token ids, index of the first answer token) for prompt+chosen and prompt+rejected.

    Built as TRL's DPOTrainer builds them: the chat-template render of the prompt (assistant
    turn opened) and of prompt+answer; the answer starts where the two token lists part;
    sequences are cut to max_length from the end.
    """
    prompt = _ids(tokenizer, render(tokenizer, example["prompt"], add_generation_prompt=True))
    out = []
    for key in ("chosen", "rejected"):
        full = _ids(tokenizer, render(tokenizer, [*example["prompt"], *example[key]], add_generation_prompt=False))
        out.append((full[:max_length], _common_prefix(prompt, full)))
    return out


def _ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def answer_logps(model: Any, sequences: list[tuple[list[int], int]], batch_size: int = 8) -> list[float]:
    """Sum of the model's log-probabilities of each sequence's answer tokens (from its answer start on)."""
    import torch

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    sums: list[float] = []
    try:
        for i in range(0, len(sequences), batch_size):
            chunk = sequences[i : i + batch_size]
            width = max(len(ids) for ids, _ in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            answer = torch.zeros((len(chunk), width), dtype=torch.bool)
            for row, (tokens, start) in enumerate(chunk):
                ids[row, : len(tokens)] = torch.tensor(tokens)
                mask[row, : len(tokens)] = 1
                answer[row, start : len(tokens)] = True
            ids, mask, answer = ids.to(device), mask.to(device), answer.to(device)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            logps = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            sums.extend((logps * answer[:, 1:]).sum(dim=1).tolist())
    finally:
        if was_training:
            model.train()
    return sums


def preference_accuracy(model: Any, tokenizer: Any, examples: list[Example], *, max_length: int, limit: int) -> dict[str, Any]:
    """Share of up to `limit` held-out pairs where the model's log-probability of the chosen
    answer (summed over its tokens) is above the rejected one's, and the mean margin between them.

    Unlike DPO's `rewards_accuracies` this needs no reference model: it is the model's own
    preference, so it compares the model before and after training on the same pairs.
    """
    pairs = [e for e in examples if "chosen" in e][:limit]
    if not pairs:
        return {"accuracy": None, "margin": None, "pairs": 0}
    sequences = [seq for e in pairs for seq in pair_sequences(e, tokenizer, max_length)]
    logps = answer_logps(model, sequences)
    margins = [logps[2 * i] - logps[2 * i + 1] for i in range(len(pairs))]
    return {
        "accuracy": sum(1 for m in margins if m > 0) / len(margins),
        "margin": round(sum(margins) / len(margins), 4),
        "pairs": len(margins),
    }
