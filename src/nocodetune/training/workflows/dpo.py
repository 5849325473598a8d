"""Direct preference optimisation: learn to prefer the chosen answer over the rejected one (TRL's DPOTrainer).

The reference model is where the job starts (the base, or the parent's result for a child
job, so an SFT → DPO chain is measured against its SFT parent):

- **LoRA / QLoRA**: TRL adds the adapter (`peft_config`) and computes the reference by
  running the same model with the adapter switched off. No second copy in memory.
- **full**: the reference is a frozen copy of the start model, made here (TRL would
  otherwise reload it from the model's *original* folder, which for a child job is the
  base, not the parent). Memory: one more copy of the weights (validate's estimate says so).

Settings from the job's `preference` section keep TRL's names: beta, loss_type, label_smoothing.
"""

from __future__ import annotations

import copy
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


def dpo_config(job: ResolvedJob, args: dict[str, Any]) -> Any:
    from trl import DPOConfig

    p = job.config.preference
    return DPOConfig(
        **args,
        max_length=job.config.training.max_length,
        beta=p.beta,
        loss_type=[p.loss_type],
        label_smoothing=p.label_smoothing,
        precompute_ref_log_probs=False,
    )


def frozen_copy(model: Any) -> Any:
    """The reference for full fine-tuning: the start model's weights, frozen, in eval mode."""
    reference = copy.deepcopy(model)
    reference.eval()
    for param in reference.parameters():
        param.requires_grad_(False)
    return reference


def build_trainer(job: ResolvedJob, rt: Runtime, model: Any, tokenizer: Any, data: dict[str, Any], args: dict[str, Any], callbacks: list[Any]) -> Any:
    from trl import DPOTrainer

    adapter = job.config.method in ("lora", "qlora")
    return guard_checkpoint_saves(DPOTrainer)(
        model=prepare_quantized(model, job) if adapter else model,
        ref_model=None if adapter else frozen_copy(model),
        args=dpo_config(job, args),
        train_dataset=data["train"],
        eval_dataset=data.get("eval"),
        processing_class=tokenizer,
        callbacks=callbacks,
        peft_config=lora_config(job) if adapter else None,
    )
