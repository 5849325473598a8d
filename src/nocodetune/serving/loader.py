"""Loads what a model server serves: a job's output or any local model.

A job's output is, in order of preference: `outputs/merged` (base + adapter merged, fastest
to serve), `outputs/adapter` (a peft LoRA adapter, put on its base model at load time) or
`outputs/model` (a full fine-tune). The base of an adapter is the job's `resolved.json`
model section, so it is found the same way training found it (`model_source`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nocodetune.records.job import ResolvedJob
from nocodetune.records.schema import ModelSection
from nocodetune.errors import ModelNotFoundError, NotFoundError
from nocodetune.workspace import JobPaths

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: str  # human-readable description of what is served


def job_output(job: JobPaths) -> tuple[str, Path]:
    """Which output of a finished job to serve: ('merged'|'adapter'|'model', folder)."""
    for kind, folder in (("merged", job.merged_dir), ("adapter", job.adapter_dir), ("model", job.model_dir)):
        marker = "adapter_config.json" if kind == "adapter" else "config.json"
        if (folder / marker).is_file():
            return kind, folder
    raise NotFoundError(
        f"job {job.name!r} has no trained model to serve (no outputs/merged, outputs/adapter or outputs/model)",
        file=str(job.outputs),
        hint=f"run it first: `nocodetune job run {job.name}`",
    )


def load_job(job: JobPaths, *, device: str | None = None) -> LoadedModel:
    kind, folder = job_output(job)
    if kind in ("merged", "model"):
        loaded = load_model(ModelSection(source=str(folder)), device=device)
        loaded.source = f"job {job.name} ({kind}: {folder})"
        return loaded
    section = _adapter_base(job, folder)
    base = load_model(section, device=device)
    from peft import PeftModel

    model = PeftModel.from_pretrained(base.model, str(folder))
    model.eval()
    tokenizer = base.tokenizer
    if any(folder.glob("tokenizer*")):  # training may have saved a tokenizer with added tokens
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    return LoadedModel(model=model, tokenizer=tokenizer, source=f"job {job.name} (LoRA adapter on {base.source})")


def _adapter_base(job: JobPaths, adapter: Path) -> ModelSection:
    """The adapter's base model: resolved.json's model section, else adapter_config.json."""
    if job.resolved_json.is_file():
        return ResolvedJob.read(job.resolved_json).config.model
    base = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
    if not base:
        raise ModelNotFoundError("the adapter does not name its base model", file=str(adapter / "adapter_config.json"))
    return ModelSection(source=base)


def load_model(section: ModelSection, *, device: str | None = None) -> LoadedModel:
    """Load a model found by `model_source` (GGUF files go through its safetensors cache)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nocodetune.model_source import materialize, resolve_model

    resolved = resolve_model(section)
    folder = materialize(resolved)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = _dtype(section.dtype, device)
    kwargs: dict[str, Any] = {"dtype": dtype, "trust_remote_code": section.trust_remote_code}
    if section.attn_implementation != "auto":
        kwargs["attn_implementation"] = section.attn_implementation
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=section.trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs).to(device)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # what transformers raises for unusable folders
        raise ModelNotFoundError(f"cannot load the model in {folder}: {exc}", file=str(folder), field="model.source") from exc
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, source=f"{resolved.display_name} ({folder})")


def _dtype(name: str, device: str) -> Any:
    import torch

    if name == "auto":
        return torch.bfloat16 if device.startswith("cuda") and torch.cuda.is_bf16_supported() else torch.float32
    return getattr(torch, name)
