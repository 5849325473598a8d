"""The model a training run starts from, and the LoRA adapter it trains.

The start point is `modeling.assemble` without the job itself: the base for a root job,
or the parent's result (its lineage merged) for a child job.
"""

from __future__ import annotations

from typing import Any

from nocodetune.modeling.assemble import Assembled, assemble
from nocodetune.records.job import ResolvedJob
from nocodetune.workspace import JobPaths


def load_start(job: ResolvedJob, paths: JobPaths, *, dtype: str, attn: str) -> Assembled:
    return assemble(paths, include_self=False, dtype=dtype, attn=attn, quantize_4bit=job.config.method == "qlora")


def lora_config(job: ResolvedJob) -> Any:
    """peft's LoraConfig from the job's `lora` section (the SFT path wraps the model with it; DPO/ORPO hand it to TRL)."""
    from peft import LoraConfig

    lora = job.config.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias=lora.bias,
        modules_to_save=lora.modules_to_save,
        task_type="CAUSAL_LM",
    )


def prepare_quantized(model: Any, job: ResolvedJob) -> Any:
    """A 4-bit (QLoRA) model made trainable under an adapter (norms in fp32, input grads); others unchanged."""
    if not getattr(model, "is_loaded_in_4bit", False):
        return model
    from peft import prepare_model_for_kbit_training

    return prepare_model_for_kbit_training(model, use_gradient_checkpointing=job.config.training.gradient_checkpointing)


def apply_lora(model: Any, job: ResolvedJob) -> Any:
    from peft import get_peft_model

    return get_peft_model(prepare_quantized(model, job), lora_config(job))
