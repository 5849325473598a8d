"""A model's module names, read from its config without loading any weights.

The model is built on PyTorch's meta device (shapes only, no memory), which gives the
exact names peft will see. Used by validate to check `lora.target_modules`, and by the
legacy import to translate module names between model families.
"""

from __future__ import annotations

from functools import lru_cache

from nocodetune.model_source import converted_dir, resolve_model
from nocodetune.records.schema import ModelSection


def linear_module_names(section: ModelSection) -> list[str]:
    """Dotted names of the model's linear layers (the output head excluded, as peft's all-linear does)."""
    return list(_cached(section.source, section.gguf_file, section.revision, section.trust_remote_code))


@lru_cache(maxsize=16)
def _cached(source: str, gguf_file: str | None, revision: str | None, trust_remote_code: bool) -> tuple[str, ...]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    section = ModelSection(source=source, gguf_file=gguf_file, revision=revision, trust_remote_code=trust_remote_code)
    located = resolve_model(section)
    converted = converted_dir(located)
    if converted is not None and (converted / "config.json").is_file():
        config = AutoConfig.from_pretrained(str(converted))
    elif located.is_gguf:
        config = AutoConfig.from_pretrained(str(located.path), gguf_file=located.gguf_file)
    else:
        config = AutoConfig.from_pretrained(str(located.path), trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    head = {name for name, module in model.named_modules() if module is model.get_output_embeddings()}
    return tuple(name for name, module in model.named_modules() if isinstance(module, torch.nn.Linear) and name not in head)
