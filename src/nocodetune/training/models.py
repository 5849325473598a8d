"""Load the model a job starts from: its base model, or its parent job's result.

A child job starts from what its parent produced: the parent's full model, or the
parent's adapter merged into the parent's own starting point (recursively, so a chain of
LoRA jobs stacks). Merging first lets a new LoRA train on top of the parent's weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from nocodetune.records.job import ResolvedJob
from nocodetune.errors import ModelNotFoundError
from nocodetune.model_source import load_tokenizer, materialize, resolve_model
from nocodetune.workspace import JobPaths
from nocodetune.training import distributed


class StartPoint(BaseModel):
    """Where the weights came from, for the model card and metrics."""

    model: str  # display name of the root base model
    folder: str  # folder the root weights were loaded from
    parents: list[str] = []  # parent job folders applied on top, oldest first


def _torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def _load_causal_lm(folder: Path, dtype: str, attn: str, trust_remote_code: bool, quantize_4bit: bool = False) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": _torch_dtype(dtype), "trust_remote_code": trust_remote_code}
    if attn != "auto":
        kwargs["attn_implementation"] = attn
    if quantize_4bit:  # QLoRA: NF4 weights, computation in the run dtype (runner checked CUDA + bitsandbytes)
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=_torch_dtype(dtype)
        )
        kwargs["device_map"] = {"": distributed.local_rank()}  # each process its own GPU
    return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)


def load_start(job: ResolvedJob, *, dtype: str, attn: str) -> tuple[Any, Any, StartPoint]:
    """(model, tokenizer, start point) for `job`, following its parent chain."""
    parent_dir = job.lineage.parent_dir
    if parent_dir:
        return load_job_result(JobPaths(Path(parent_dir)), dtype=dtype, attn=attn)
    resolved = resolve_model(job.config.model)
    folder = materialize(resolved)
    tokenizer = load_tokenizer(resolved)
    model = _load_causal_lm(folder, dtype, attn, job.config.model.trust_remote_code, quantize_4bit=job.config.method == "qlora")
    return model, tokenizer, StartPoint(model=resolved.display_name, folder=str(folder))


def load_job_result(paths: JobPaths, *, dtype: str, attn: str) -> tuple[Any, Any, StartPoint]:
    """The trained model of a finished job (full model, merged model, or adapter on its start)."""
    from transformers import AutoTokenizer

    if not paths.resolved_json.is_file():
        raise ModelNotFoundError(f"parent job folder {paths.root} has no resolved.json", file=str(paths.resolved_json))
    parent = ResolvedJob.read(paths.resolved_json)
    trust = parent.config.model.trust_remote_code
    for folder in (paths.model_dir, paths.merged_dir):
        if (folder / "config.json").is_file():
            model = _load_causal_lm(folder, dtype, attn, trust)
            start = _parent_start(parent, paths)
            return model, AutoTokenizer.from_pretrained(str(folder)), start
    if (paths.adapter_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        base, _, start = load_start(parent, dtype=dtype, attn=attn)
        model = PeftModel.from_pretrained(base, str(paths.adapter_dir)).merge_and_unload()
        start.parents.append(str(paths.root))
        return model, AutoTokenizer.from_pretrained(str(paths.adapter_dir)), start
    raise ModelNotFoundError(
        f"parent job {paths.name!r} has no trained model yet (no outputs/model, outputs/merged or outputs/adapter)",
        field="parent",
        file=str(paths.outputs),
        hint=f"run the parent first: nocodetune job run {paths.name}",
    )


def _parent_start(parent: ResolvedJob, paths: JobPaths) -> StartPoint:
    """Lineage of a parent whose full weights we load directly (no need to load its base)."""
    chain = [*parent.lineage.parent_chain]
    try:
        name = resolve_model(parent.config.model).display_name
    except ModelNotFoundError:
        name = parent.config.model.source
    return StartPoint(model=name, folder=str(paths.model_dir), parents=[*chain, str(paths.root)])


def apply_lora(model: Any, job: ResolvedJob) -> Any:
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if getattr(model, "is_loaded_in_4bit", False):
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=job.config.training.gradient_checkpointing)
    lora = job.config.lora
    config = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        bias=lora.bias,
        modules_to_save=lora.modules_to_save,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
