"""Odds-ratio preference optimisation: SFT on the chosen answer plus a penalty on the rejected one
(TRL's ORPOTrainer, in `trl.experimental.orpo` since TRL 1.x).

No reference model at all, so no extra memory or forward pass beyond the rejected answer;
`preference.beta` is the weight of the odds-ratio term (λ in the paper). LoRA and QLoRA
adapters are added by TRL from `peft_config`.
"""

from __future__ import annotations

import os
from typing import Any

from nocodetune.data.examples import Example
from nocodetune.modeling.assemble import Assembled
from nocodetune.records.job import ResolvedJob
from nocodetune.training.auto import Runtime
from nocodetune.training.models import lora_config, prepare_quantized
from nocodetune.training.outputs import guard_checkpoint_saves
from nocodetune.training.workflows import preference_datasets


def prepare(job: ResolvedJob, tokenizer: Any, start: Assembled, train: list[Example], evals: list[Example]) -> tuple[dict[str, Any], bool]:
    return preference_datasets(train, evals), False


def _experimental() -> None:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # the user chose ORPO; TRL's "experimental" notice is for developers


def orpo_config(job: ResolvedJob, args: dict[str, Any]) -> Any:
    _experimental()
    from trl.experimental.orpo import ORPOConfig

    # ORPO batches carry chosen_/rejected_input_ids but no input_ids: the Trainer cannot count tokens there.
    # Its collator needs the prompt/chosen/rejected columns kept.
    shared = {**args, "include_num_input_tokens_seen": "no", "remove_unused_columns": False}
    return ORPOConfig(**shared, max_length=job.config.training.max_length, beta=job.config.preference.beta)


def build_trainer(job: ResolvedJob, rt: Runtime, model: Any, tokenizer: Any, data: dict[str, Any], args: dict[str, Any], callbacks: list[Any]) -> Any:
    _experimental()
    from trl.experimental.orpo import ORPOTrainer

    adapter = job.config.method in ("lora", "qlora")
    return guard_checkpoint_saves(ORPOTrainer)(
        model=prepare_quantized(model, job) if adapter else model,  # QLoRA: k-bit training set-up, as DPO and SFT do
        args=orpo_config(job, args),
        train_dataset=data["train"],
        eval_dataset=data.get("eval"),
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=lora_config(job) if adapter else None,
    )
