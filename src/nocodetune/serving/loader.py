"""Loads what a model server serves: a job's model or any local model.

A job's model is `modeling.assemble` of its whole lineage (base → each parent → the
job), the same function training used for its start point, so the server answers what
the job answered in its own after-training samples. `--model PATH` may also name a
model folder or a portable adapter folder (an export, or one copied from elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nocodetune.records.schema import ModelSection
from nocodetune.workspace import JobPaths


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    source: str  # human-readable description of what is served


def load_job(job: JobPaths, *, device: str | None = None, dtype: str = "auto") -> LoadedModel:
    from nocodetune.modeling.assemble import assemble

    device = device or _device()
    built = assemble(job, include_self=True, dtype=_dtype_name(dtype, device))
    return LoadedModel(model=built.model.to(device), tokenizer=built.tokenizer, source=f"job {job.name} ({built.description})")


def load_model(section: ModelSection, *, device: str | None = None) -> LoadedModel:
    """A model found by `model_source` (GGUF files go through its safetensors cache), or an adapter folder."""
    from nocodetune.model_source import load_tokenizer, materialize, resolve_model
    from nocodetune.modeling.assemble import assemble_folder, load_causal_lm

    device = device or _device()
    dtype = _dtype_name(section.dtype, device)
    path = Path(section.source).expanduser()
    if path.is_dir() and (path / "adapter_config.json").is_file() and not (path / "config.json").is_file():
        built = assemble_folder(path, dtype=dtype)
        return LoadedModel(model=built.model.to(device), tokenizer=built.tokenizer, source=f"{built.description} (adapter {path})")
    resolved = resolve_model(section)
    folder = materialize(resolved)
    model = load_causal_lm(folder, dtype=dtype, attn=section.attn_implementation, trust_remote_code=section.trust_remote_code).to(device)
    model.eval()
    return LoadedModel(model=model, tokenizer=load_tokenizer(resolved), source=f"{resolved.display_name} ({folder})")


def _device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _dtype_name(name: str, device: str) -> str:
    if name != "auto":
        return name
    import torch

    return "bfloat16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "float32"
