"""One readable file per training method (LLaMA-Factory's layout): `sft`, `dpo`, `orpo`.

`trainer_setup.train_job` does what every method shares (start model, held-out
evaluation before and after, resume, events, early stopping, TensorBoard, saving,
metrics); a workflow only says how its data becomes a dataset and which TRL trainer, with
which settings, trains on it:

- `prepare(job, tokenizer, start, train, evals) -> (datasets by split, was_cached)`
- `build_trainer(job, rt, model, tokenizer, data, args, callbacks) -> Trainer`, where
  `args` are the shared TrainingArguments (`trainer_setup.training_args`).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from nocodetune.data.examples import Example
from nocodetune.errors import DataError


def for_objective(objective: str) -> ModuleType:
    """The workflow module of a job's `objective` (sft, dpo, orpo)."""
    from nocodetune.training.workflows import dpo, orpo, sft

    return {"sft": sft, "dpo": dpo, "orpo": orpo}[objective]


def check_objective(objective: str, fmt: str) -> None:
    """Refuse data the objective cannot train on: preference pairs need dpo/orpo, and dpo/orpo need pairs.

    (Validate reports the same two mismatches, in `config.validate._check_data`.)
    """
    if objective == "sft" and fmt == "preference":
        raise DataError("this dataset holds preference pairs (prompt, chosen, rejected): set objective to dpo or orpo to train on them", field="objective")
    if objective != "sft" and fmt != "preference":
        raise DataError(
            f"objective {objective} trains on preference pairs, but the dataset was read as {fmt}", field="dataset.format",
            hint="use a dataset with prompt, chosen and rejected columns (or map them with dataset.columns), or set objective: sft",
        )


def preference_datasets(train: list[Example], evals: list[Example]) -> dict[str, Any]:
    """Preference pairs as TRL's conversational preference datasets ({prompt, chosen, rejected} message lists).

    TRL tokenizes them itself (chat template, answer starting where prompt and
    prompt+answer part), the same way `evaluation.pair_sequences` does for the held-out pairs.
    """
    from datasets import Dataset

    def rows(examples: list[Example]) -> Any:
        return Dataset.from_list([{"prompt": e["prompt"], "chosen": e["chosen"], "rejected": e["rejected"]} for e in examples])

    return {"train": rows(train), **({"eval": rows(evals)} if evals else {})}
