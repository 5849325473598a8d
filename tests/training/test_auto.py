"""'auto' settings resolve to what is fastest on the machine (see bench/RESULTS.md)."""

from __future__ import annotations

from nocodetune.records.schema import JobConfig
from nocodetune.training.auto import resolve_runtime


def test_cpu_auto_uses_length_grouping_fp32_and_no_packing():
    rt = resolve_runtime(JobConfig(), device="cpu")
    assert (rt.packing, rt.padding_free, rt.group_by_length) == (False, False, True)
    assert (rt.dtype, rt.bf16, rt.attn_implementation) == ("float32", False, "sdpa")


def test_explicit_settings_win_over_auto():
    cfg = JobConfig.model_validate({"training": {"packing": True, "group_by_length": "auto", "bf16": False}, "model": {"dtype": "bfloat16"}})
    rt = resolve_runtime(cfg, device="cpu")
    assert rt.packing is True and rt.group_by_length is False  # packed rows have no lengths to group
    assert rt.padding_free is False  # sdpa cannot keep packed examples apart in one row
    assert rt.dtype == "bfloat16"
