"""Examples → `input_ids` + `labels`, with the prompt masked, cached on disk.

The chat template is applied the way TRL does it: the completion starts where the
tokenized prompt (with generation prompt) and prompt+completion stop agreeing, and every
token before that gets label -100. Doing it here rather than inside SFTTrainer lets the
result be cached under a key of (data, tokenizer, mapping, max_length), so a rerun or a
resume skips tokenization; SFTTrainer sees a processed dataset and only pads/packs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nocodetune.training.examples import Example

IGNORE = -100


def _ids(encoded: Any) -> list[int]:
    ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
    return list(ids[0] if ids and isinstance(ids[0], list) else ids)


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def tokenize_example(example: Example, tokenizer: Any, max_length: int, completion_only_loss: bool) -> dict[str, list[int]]:
    """One example as input_ids/labels (labels -100 on the prompt when completion_only_loss)."""
    eos = tokenizer.eos_token or ""
    if "text" in example:
        text = example["text"] if example["text"].endswith(eos) else example["text"] + eos
        ids = _ids(tokenizer(text, add_special_tokens=False))
        ids = ids[:max_length]
        return {"input_ids": ids, "labels": list(ids)}
    prompt, completion = example["prompt"], example["completion"]
    if getattr(tokenizer, "chat_template", None):
        prompt_ids = _ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
        full_ids = _ids(tokenizer.apply_chat_template(prompt + completion, tokenize=True))
    else:  # no template: plain "prompt\ncompletion<eos>"
        prompt_text = "\n".join(m["content"] for m in prompt) + "\n"
        prompt_ids = _ids(tokenizer(prompt_text, add_special_tokens=False))
        full_ids = _ids(tokenizer(prompt_text + completion[0]["content"] + eos, add_special_tokens=False))
    start = common_prefix_length(prompt_ids, full_ids)
    full_ids = full_ids[:max_length]
    labels = [IGNORE] * min(start, len(full_ids)) + full_ids[start:] if completion_only_loss else list(full_ids)
    return {"input_ids": full_ids, "labels": labels}


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Identity of a tokenizer for cache keys: vocab, specials and chat template."""
    parts = [
        type(tokenizer).__name__,
        str(len(tokenizer)),
        str(tokenizer.eos_token),
        str(getattr(tokenizer, "chat_template", "")),
        hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest(),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def cache_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def tokenize_split(examples: list[Example], tokenizer: Any, max_length: int, completion_only_loss: bool) -> dict[str, list]:
    """Columns input_ids/labels/length, dropping examples whose answer was truncated away."""
    cols: dict[str, list] = {"input_ids": [], "labels": [], "length": []}
    for ex in examples:
        out = tokenize_example(ex, tokenizer, max_length, completion_only_loss)
        if all(label == IGNORE for label in out["labels"]):
            continue  # the prompt filled max_length: nothing to learn from it
        cols["input_ids"].append(out["input_ids"])
        cols["labels"].append(out["labels"])
        cols["length"].append(len(out["input_ids"]))
    return cols


def load_or_tokenize(
    splits: dict[str, list[Example]], tokenizer: Any, *, max_length: int, completion_only_loss: bool, key: str, cache_root: Path
) -> tuple[dict[str, Any], bool]:
    """DatasetDict-like {split: Dataset} from the cache, or tokenized now and cached. Returns (datasets, was_cached)."""
    from datasets import Dataset, load_from_disk

    target = cache_root / key
    if (target / "done").is_file():
        return {name: load_from_disk(str(target / name)) for name in splits}, True
    data = {name: Dataset.from_dict(tokenize_split(exs, tokenizer, max_length, completion_only_loss)) for name, exs in splits.items()}
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".tok-", dir=cache_root))
    try:
        for name, ds in data.items():
            ds.save_to_disk(str(staging / name))
        (staging / "done").write_text("ok\n")
        if not target.exists():
            os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {name: load_from_disk(str(target / name)) for name in splits}, False
