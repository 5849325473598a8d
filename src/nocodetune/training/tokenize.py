"""The tokenized training data of a job, cached on disk.

Tokens and masks come from `data.tokens` (the function validate uses too); this module
only caches the result under a key of (data, tokenizer, mapping, max_length), so a rerun
or a resume skips tokenization. SFTTrainer sees a processed dataset and only pads/packs it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from nocodetune.data.examples import Example
from nocodetune.data.tokens import tokenize_split

MASK_SCHEME = "assistant-spans-1"  # part of the cache key: a change in how masks are built invalidates old caches


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


def load_or_tokenize(
    splits: dict[str, list[Example]], tokenizer: Any, *, max_length: int, completion_only_loss: bool, key: str, cache_root: Path
) -> tuple[dict[str, Any], bool]:
    """DatasetDict-like {split: Dataset} from the cache, or tokenized now and cached. Returns (datasets, was_cached)."""
    from datasets import Dataset, load_from_disk

    target = cache_root / key
    if (target / "done").is_file():
        return {name: load_from_disk(str(target / name)) for name in splits}, True
    data = {name: Dataset.from_dict(tokenize_split(exs, tokenizer, max_length, completion_only_loss)[0]) for name, exs in splits.items()}
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
