"""Everything a finished job leaves in `outputs/`: model, metrics, plot, samples, model card.

Final weights are written to a staging folder next to their target and renamed at the
end, so a folder named `model/` or `adapter/` is always complete.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from collections.abc import Callable
from typing import Any

from nocodetune.errors import NocodetuneError
from nocodetune.records.job import ResolvedJob


class DiskFullError(NocodetuneError):
    """The disk filled up while a checkpoint or the final model was written (the partial folder is removed)."""

    failure_kind = "disk"  # the `kind` of the failed event


def is_disk_full(exc: BaseException, folder: Path) -> bool:
    """Whether `exc` (from torch, safetensors, tokenizers or plain file writes) means the disk is full.

    torch reports ENOSPC as "file write failed" without an errno, so a write failure on a
    filesystem with (almost) no free space counts too.
    """
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    if "no space left" in text or "storagefull" in text or "disk quota" in text:
        return True
    if "write" in text:
        try:
            return shutil.disk_usage(folder if folder.exists() else folder.parent).free < 16 * 1024 * 1024
        except OSError:
            return False
    return False


def disk_full(what: str, folder: Path) -> DiskFullError:
    return DiskFullError(
        f"no space left on device while saving {what}; the partial folder was removed",
        file=str(folder),
        hint="free disk space (old checkpoints in outputs/checkpoints, other jobs' outputs), then resume the job",
    )


def save_atomically(target: Path, model: Any, tokenizer: Any, before_rename: Callable[[Path], None] | None = None) -> Path:
    """Save weights and tokenizer to a staging folder, finish it (`before_rename`), then rename it to `target`.

    A failure (a full disk above all) removes the staging folder and leaves any previous
    `target` as it was, so a folder named `model/` or `adapter/` is always complete.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the model server may run as another user
    try:
        try:
            model.save_pretrained(str(staging), safe_serialization=True)
            tokenizer.save_pretrained(str(staging))
            if before_rename is not None:
                before_rename(staging)
        except Exception as exc:
            if is_disk_full(exc, target.parent):
                raise disk_full(f"the model to outputs/{target.name}", target) from exc
            raise
        if target.exists():
            shutil.rmtree(target)  # a rerun replaces the previous result
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


CHECKPOINT_COMPLETE = "trainer_state.json"  # Trainer writes it last: a checkpoint without it is partial


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest `checkpoint-<step>` that holds a trainer state; partial ones (a crash or a full disk
    mid-save) are skipped, so a resume never starts from half a checkpoint."""
    if not folder.is_dir():
        return None
    found = []
    for path in folder.iterdir():
        step = path.name.removeprefix("checkpoint-")
        if path.is_dir() and path.name.startswith("checkpoint-") and step.isdigit() and (path / CHECKPOINT_COMPLETE).is_file():
            found.append((int(step), path))
    return str(max(found)[1]) if found else None


def guard_checkpoint_saves(trainer_class: type) -> type:
    """`trainer_class` whose checkpoint saves fail cleanly: on a full disk the partial
    `checkpoint-<step>` folder is removed and a DiskFullError names it."""

    class CheckpointGuard(trainer_class):  # type: ignore[misc, valid-type]
        def _save_checkpoint(self, model: Any, trial: Any) -> None:
            folder = Path(self.args.output_dir) / f"checkpoint-{self.state.global_step}"
            existed = folder.exists()
            try:
                super()._save_checkpoint(model, trial)
            except Exception as exc:
                if not is_disk_full(exc, folder):
                    raise
                if not existed:
                    shutil.rmtree(folder, ignore_errors=True)
                raise disk_full(f"checkpoint-{self.state.global_step} (outputs/checkpoints/{folder.name})", folder) from exc

    CheckpointGuard.__name__ = CheckpointGuard.__qualname__ = trainer_class.__name__
    return CheckpointGuard




def write_samples(path: Path, before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for stage, items in (("before", before), ("after", after)):
            for item in items:
                fh.write(json.dumps({"stage": stage, **item}, ensure_ascii=False) + "\n")


def plot_loss(path: Path, history: list[dict[str, Any]]) -> Path | None:
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not train and not evals:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    if train:
        ax.plot(*zip(*train), label="train loss")
    if evals:
        ax.plot(*zip(*evals), "o-", label="eval loss")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_model_card(path: Path, job: ResolvedJob, metrics: dict[str, Any], model_path: Path, start: str) -> None:
    """A README.md that says what this model is, how it was made and from what data."""
    data = "\n".join(f"- `{d.name}@{d.version}` ({d.file}, sha256 `{d.sha256[:16]}…`, {d.rows} rows)" for d in job.datasets) or "- (none)"
    lineage = job.lineage
    chain = " → ".join([*lineage.parent_chain, job.name]) if lineage.parent_chain else job.name
    scores = ""
    if metrics.get("heldout_score_before") is not None:
        scores = (
            f"\nHeld-out {job.config.evaluation.heldout_metric}: "
            f"{metrics['heldout_score_before']:.2f} before → {metrics.get('heldout_score_after', 0):.2f} after training.\n"
        )
    if metrics.get("heldout_preference_accuracy_before") is not None:
        scores += (
            f"\nHeld-out preference accuracy (chosen answer more likely than rejected): "
            f"{metrics['heldout_preference_accuracy_before']:.2f} before → {metrics.get('heldout_preference_accuracy_after') or 0:.2f} after training.\n"
        )
    keys = ("train_loss", "eval_loss", "perplexity", "tokens_seen", "train_runtime_seconds", "tokens_per_second", "stop_reason")
    table = "\n".join(f"| {k} | {metrics.get(k)} |" for k in keys)
    text = f"""# {job.name}

Fine-tuned with NoCodeTune ({job.config.method}, {job.config.objective}) from **{start}**.
{job.config.description}

- Output: `{model_path.relative_to(path.parent.parent) if model_path.is_relative_to(path.parent.parent) else model_path}`
- Base jobs: {' → '.join(lineage.base_chain) or lineage.base or '(none)'}
- Job lineage: {chain}

## Data
{data}

## Results
| metric | value |
|---|---|
{table}
{scores}
## Configuration
```json
{job.config.model_dump_json(indent=2)}
```
"""
    path.write_text(text, encoding="utf-8")
