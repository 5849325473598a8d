"""Examples → token ids and the mask of trained tokens: one function for validate and training.

Chat examples are rendered with the model's chat template. Every assistant turn is
trained, also for templates without generation markers (SmolLM2's): the conversation is
rendered prefix by prefix, and the characters each assistant turn adds are its trained
span. The pieces must concatenate to the full render; a template where they do not (one
that rewrites earlier turns) is refused by name rather than trained on a wrong mask.

Needs only a tokenizer object (no torch): the caller loads it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, Field

from nocodetune.data.examples import Example, Message
from nocodetune.errors import DataError

IGNORE = -100


class TokenizedExample(BaseModel):
    input_ids: list[int]
    labels: list[int]
    full_length: int = Field(description="Tokens before truncation to max_length.")

    @property
    def trained_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE)


def template_name(tokenizer: Any) -> str:
    """A short name for a tokenizer's chat template, for messages (model name + template hash)."""
    template = getattr(tokenizer, "chat_template", None) or ""
    digest = hashlib.sha256(str(template).encode()).hexdigest()[:8]
    return f"{getattr(tokenizer, 'name_or_path', '') or 'model'} chat template {digest}"


def _plain(messages: Sequence[Message], eos: str) -> str:
    """Render for tokenizers without a chat template: turns on their own lines, answers end with EOS."""
    return "".join(m["content"] + (eos if m["role"] == "assistant" else "\n") for m in messages)


def render(tokenizer: Any, messages: Sequence[Message], *, add_generation_prompt: bool) -> str:
    """The text a model sees for `messages` (with the assistant's turn opened when asked)."""
    if getattr(tokenizer, "chat_template", None):
        try:
            return tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=add_generation_prompt)
        except Exception as exc:  # noqa: BLE001 - jinja raises from inside templates (role order rules ...)
            raise DataError(f"the {template_name(tokenizer)} refuses this conversation: {exc}", field="dataset.columns") from None
    return _plain(messages, tokenizer.eos_token or "")


def assistant_spans(tokenizer: Any, messages: Sequence[Message]) -> tuple[str, list[tuple[int, int]]]:
    """The full render and the character span each assistant turn adds to it."""
    full = render(tokenizer, messages, add_generation_prompt=False)
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True)
        through = render(tokenizer, messages[: i + 1], add_generation_prompt=False)
        if not (through.startswith(before) and full.startswith(through)):
            raise DataError(
                f"the {template_name(tokenizer)} renders a conversation differently from its prefixes, so the assistant turns "
                "to train cannot be told apart",
                field="model.source",
                hint="use a model whose chat template keeps earlier turns unchanged, or train single-turn examples (prompt/completion)",
            )
        spans.append((len(before), len(through)))
    return full, spans


def _ids(encoded: Any) -> list[int]:
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return list(ids[0] if ids and isinstance(ids[0], list) else ids)


def _labels_by_offsets(tokenizer: Any, full: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids = _ids(enc)
    labels = [tok if any(lo <= start < hi for lo, hi in spans) else IGNORE for tok, (start, _end) in zip(ids, enc["offset_mapping"])]
    return ids, labels


def _labels_by_prefixes(tokenizer: Any, full: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """For slow tokenizers (no offsets): the tokens of each prefix mark where each span starts and ends."""
    ids = _ids(tokenizer(full, add_special_tokens=False))
    labels = [IGNORE] * len(ids)
    for lo, hi in spans:
        start = len(_ids(tokenizer(full[:lo], add_special_tokens=False)))
        end = len(_ids(tokenizer(full[:hi], add_special_tokens=False)))
        labels[start:end] = ids[start:end]
    return ids, labels


def tokenize_example(example: Example, tokenizer: Any, max_length: int, completion_only_loss: bool = True) -> TokenizedExample:
    """One text or chat example as input_ids + labels (IGNORE outside assistant turns when completion_only_loss)."""
    if "text" in example:
        eos = tokenizer.eos_token or ""
        text = example["text"] if example["text"].endswith(eos) else example["text"] + eos
        ids = _ids(tokenizer(text, add_special_tokens=False))
        return TokenizedExample(input_ids=ids[:max_length], labels=ids[:max_length], full_length=len(ids))
    if "messages" not in example:
        raise DataError("preference pairs are tokenized by the preference trainer, not as chat examples", field="objective")
    full, spans = assistant_spans(tokenizer, example["messages"])
    if getattr(tokenizer, "is_fast", False):
        ids, labels = _labels_by_offsets(tokenizer, full, spans)
    else:
        ids, labels = _labels_by_prefixes(tokenizer, full, spans)
    if not completion_only_loss:
        labels = list(ids)
    return TokenizedExample(input_ids=ids[:max_length], labels=labels[:max_length], full_length=len(ids))


def tokenize_split(examples: Sequence[Example], tokenizer: Any, max_length: int, completion_only_loss: bool = True) -> tuple[dict[str, list[Any]], list[int]]:
    """Columns input_ids/labels/length for a split, and the indices of examples dropped
    because truncation left them nothing to train on (the prompt filled max_length)."""
    cols: dict[str, list[Any]] = {"input_ids": [], "labels": [], "length": []}
    dropped: list[int] = []
    for index, example in enumerate(examples):
        out = tokenize_example(example, tokenizer, max_length, completion_only_loss)
        if out.trained_tokens == 0:
            dropped.append(index)
            continue
        cols["input_ids"].append(out.input_ids)
        cols["labels"].append(out.labels)
        cols["length"].append(len(out.input_ids))
    return cols, dropped


class PreferenceLengths(BaseModel):
    prompt: int
    chosen: int
    rejected: int


def preference_lengths(example: Example, tokenizer: Any) -> PreferenceLengths:
    """Token counts of a preference pair's prompt (with the assistant turn opened) and of each answer."""
    prompt_text = render(tokenizer, example["prompt"], add_generation_prompt=True)
    prompt = len(_ids(tokenizer(prompt_text, add_special_tokens=False)))

    def answer(messages: list[Message]) -> int:
        full = render(tokenizer, [*example["prompt"], *messages], add_generation_prompt=False)
        return len(_ids(tokenizer(full, add_special_tokens=False))) - prompt

    return PreferenceLengths(prompt=prompt, chosen=answer(example["chosen"]), rejected=answer(example["rejected"]))


def training_steps(num_examples: int, *, batch_size: int, grad_accum: int, epochs: float, max_steps: int, world_size: int = 1) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps) exactly as transformers' Trainer counts them.

    Each rank sees ceil(n / (batch x world)) batches per epoch; an epoch's last partial
    accumulation still makes a step.
    """
    if num_examples <= 0:
        return 0, 0
    batches = -(-num_examples // (batch_size * world_size))
    per_epoch = max(batches // grad_accum + int(batches % grad_accum > 0), 1)
    total = max_steps if max_steps > 0 else math.ceil(epochs * per_epoch)
    return per_epoch, total
