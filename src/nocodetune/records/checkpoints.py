"""What a training checkpoint folder says about itself, read without torch.

Checkpoints are Hugging Face Trainer folders (`outputs/checkpoints/checkpoint-<step>/`);
this module only reads them. Validate and the training process both need "which is the
latest one" and "how many processes wrote it" (a resume with another world size changes
the global batch and the data order, and both say so), so the two answers live here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


def latest_checkpoint(folder: Path) -> Path | None:
    """The checkpoint with the highest step in `folder` (None when there is none)."""
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if p.is_dir() and (m := _CHECKPOINT.match(p.name))]
    return max(found)[1] if found else None


def checkpoint_step(checkpoint: Path) -> int | None:
    m = _CHECKPOINT.match(checkpoint.name)
    return int(m.group(1)) if m else None


def checkpoint_world_size(checkpoint: Path) -> int:
    """How many processes wrote a checkpoint: the Trainer saves one random state per process.

    One process writes `rng_state.pth`; n processes write `rng_state_0.pth` ..
    `rng_state_<n-1>.pth`. A checkpoint without any random state counts as one.
    """
    ranked = [p for p in checkpoint.glob("rng_state_*.pth") if p.stem.rsplit("_", 1)[-1].isdigit()]
    return len(ranked) if ranked else 1


def resume_world_message(before: int, now: int, step: int | None, config: Any) -> str:
    """What resuming a checkpoint written by `before` processes on `now` processes does (validate and training say the same).

    `config` is the job's JobConfig (its training section gives the batch sizes).
    """
    t = config.training
    per_step = t.per_device_train_batch_size * t.gradient_accumulation_steps
    return (
        f"the last checkpoint (step {step}) was written by {before} process(es) and this run uses {now}: training continues from step {step}, "
        f"but each step now takes {per_step * now} examples instead of {per_step * before}, the data order differs from an uninterrupted run "
        f"and the per-process random state starts fresh; keep {before} process(es) to continue exactly"
    )
