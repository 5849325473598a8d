"""`merged`: the job's whole lineage (base → parents → job) merged into one Hugging Face folder.

The model comes from `modeling.assemble`, the function training, sampling and serving
use, so the folder answers what the job answers. It holds safetensors weights, the
tokenizer with its chat template, the generation config, the weights record
(`nocodetune_weights.json`) and a model card.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nocodetune.export.common import ExportResult, Progress, model_card, no_progress
from nocodetune.records.weights import WeightsRecord, write_weights
from nocodetune.workspace import JobPaths

USAGE = """
```python
from transformers import AutoModelForCausalLM, AutoTokenizer

model = AutoModelForCausalLM.from_pretrained("PATH")
tokenizer = AutoTokenizer.from_pretrained("PATH")
```

Or serve it with an OpenAI-compatible API: `nocodetune server start model --model PATH`.
"""


def base_dtype(folder: Path) -> str:
    """The dtype the root base model's weights were stored in (float32 when it does not say)."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "float32"
    value = config.get("dtype") or config.get("torch_dtype") or "float32"
    return value if value in ("float32", "bfloat16", "float16") else "float32"


def save_merged(model: Any, tokenizer: Any, folder: Path, weights: WeightsRecord, *, dtype: str = "float32") -> None:
    """Write a loadable HF folder: weights (in `dtype`), tokenizer + chat template, generation config, weights record."""
    from nocodetune.modeling.assemble import torch_dtype

    folder.mkdir(parents=True, exist_ok=True)
    model = model.to(torch_dtype(dtype))
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    write_weights(folder, weights)


def export_merged(paths: JobPaths, stage: Path, progress: Progress = no_progress) -> ExportResult:
    from nocodetune.modeling.assemble import assemble

    progress("loading", 0.05, "assembling the model: base, then each parent's training, then this job's")
    built = assemble(paths, include_self=True, dtype="float32")
    weights = built.weights_record(paths.name)
    dtype = base_dtype(Path(built.base_folder))
    progress("saving", 0.6, f"writing the merged model ({built.description}) in {dtype}")
    save_merged(built.model, built.tokenizer, stage, weights, dtype=dtype)
    (stage / "README.md").write_text(model_card(paths, weights, kind="merged model", usage=USAGE), encoding="utf-8")
    return ExportResult(weights=weights, details={"made_of": built.description, "dtype": dtype})
