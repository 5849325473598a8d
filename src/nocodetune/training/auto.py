"""Turn the config's 'auto' values into concrete choices for this machine.

Measured on a 2-core CPU (bench/RESULTS.md): TRL's padding-free packing gives no gain there
because SDPA attends over the whole flattened row, while running each batch's examples as
micro-batches of similar length (`group_by_length`, see training/batching.py) removes most
padding without changing the gradient. So on CPU: no packing, length-sorted micro-batches,
fp32. On a CUDA GPU with flash-attention 2, padding-free packing wins, so it is chosen there.
"""

from __future__ import annotations

import importlib.util
from typing import Literal

from pydantic import BaseModel

from nocodetune.records.schema import JobConfig


class Runtime(BaseModel):
    """What 'auto' became; recorded in the started event and metrics.json."""

    device: Literal["cuda", "mps", "cpu"]
    dtype: Literal["float32", "bfloat16", "float16"]
    bf16: bool
    fp16: bool
    attn_implementation: str
    packing: bool
    padding_free: bool
    group_by_length: bool


def detect_device() -> str:
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def resolve_runtime(config: JobConfig, device: str | None = None) -> Runtime:
    import torch

    device = device or detect_device()
    cuda_bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    t = config.training
    bf16 = cuda_bf16 if t.bf16 == "auto" else bool(t.bf16)
    dtype = config.model.dtype
    if dtype == "auto":
        dtype = "bfloat16" if cuda_bf16 else "float32"
    has_flash = device == "cuda" and importlib.util.find_spec("flash_attn") is not None
    attn = config.model.attn_implementation
    if attn == "auto":
        attn = "flash_attention_2" if has_flash else "sdpa"
    # Padding-free packing needs a kernel that honours per-example boundaries in one row.
    packing = (attn == "flash_attention_2") if t.packing == "auto" else bool(t.packing)
    group = (not packing) if t.group_by_length == "auto" else bool(t.group_by_length)
    return Runtime(
        device=device,  # type: ignore[arg-type]
        dtype=dtype,  # type: ignore[arg-type]
        bf16=bf16,
        fp16=t.fp16,
        attn_implementation=attn,
        packing=packing,
        padding_free=packing and attn == "flash_attention_2",
        group_by_length=group and not packing,
    )
