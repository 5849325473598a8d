"""Preference tuning (DPO, ORPO) on the tiny model: runs end to end, reports TRL's reward
figures, and raises the held-out preference accuracy (chosen answer more likely than rejected)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.training.conftest import DATES, events_of, run_training


def wrong_layout(iso: str) -> str:
    """The same date in a layout the data does not want (DD/MM/YYYY): the learnable difference."""
    year, month, day = iso.split("-")
    return f"{day}/{month}/{year}"


def preference_rows(n: int = 36) -> list[dict[str, str]]:
    return [{"prompt": f"Convert to ISO: {words}", "chosen": iso, "rejected": wrong_layout(iso)} for words, iso in (DATES * (n // len(DATES) + 1))[:n]]


PREF_TRAINING = {"max_steps": 10, "learning_rate": 5e-3, "eval_split": 0.25, "eval_steps": 5, "save_steps": 5, "logging_steps": 2}
REWARDS = ("rewards_chosen", "rewards_rejected", "rewards_margins", "rewards_accuracies")


def _metrics(job: Path) -> dict[str, Any]:
    return json.loads((job / "outputs" / "metrics.json").read_text())


def test_dpo_lora_raises_heldout_preference_accuracy_and_reports_rewards(job_factory):
    job = job_factory("dpo_lora", rows=preference_rows(), config={"objective": "dpo", "training": PREF_TRAINING})
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-3000:]

    events = events_of(job)
    started = next(e for e in events if e["type"] == "started")
    assert started["objective"] == "dpo" and started["format"] == "preference"
    logs = [e for e in events if e["type"] == "log"]
    assert logs and all(set(REWARDS) <= set(e) for e in logs)
    assert logs[0]["rewards_margins"] == pytest.approx(0.0, abs=1e-6)  # step 1: the policy is still its reference
    assert logs[-1]["rewards_margins"] > 0
    evals = [e for e in events if e["type"] == "eval"]
    assert [e["step"] for e in evals] == [5, 10]
    assert all(set(REWARDS) <= set(e) and "perplexity" not in e for e in evals)  # a DPO loss has no perplexity
    finished = events[-1]
    assert finished["type"] == "finished" and finished["stop_reason"] == "max_steps"

    metrics = _metrics(job)
    assert metrics["objective"] == "dpo" and metrics["perplexity"] is None
    assert metrics["heldout_preference_pairs"] == 9
    assert metrics["heldout_preference_accuracy_after"] > metrics["heldout_preference_accuracy_before"]
    assert metrics["heldout_preference_accuracy_after"] >= 0.75
    assert metrics["heldout_preference_margin_after"] > metrics["heldout_preference_margin_before"]
    assert metrics["eval_rewards_accuracies"] is not None and metrics["eval_rewards_margins"] > 0
    assert (job / "outputs" / "adapter" / "adapter_model.safetensors").is_file()
    assert "preference accuracy" in (job / "outputs" / "README.md").read_text()
    samples = [json.loads(line) for line in (job / "outputs" / "samples.jsonl").read_text().splitlines()]
    assert samples and all(s["expected"] in {iso for _, iso in DATES} for s in samples)  # expected = the chosen answer


def test_orpo_lora_trains_without_a_reference(job_factory):
    job = job_factory("orpo_lora", rows=preference_rows(), config={"objective": "orpo", "training": PREF_TRAINING})
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-3000:]
    events = events_of(job)
    assert all(set(REWARDS) <= set(e) for e in events if e["type"] in ("log", "eval"))
    metrics = _metrics(job)
    assert metrics["objective"] == "orpo"
    assert metrics["heldout_preference_accuracy_after"] > metrics["heldout_preference_accuracy_before"]
    assert (job / "outputs" / "adapter" / "adapter_model.safetensors").is_file()


def test_full_dpo_saves_a_model_and_moves_away_from_its_frozen_reference(job_factory):
    job = job_factory("dpo_full", rows=preference_rows(), config={"objective": "dpo", "method": "full", "training": {**PREF_TRAINING, "learning_rate": 1e-3}})
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = _metrics(job)
    assert metrics["heldout_preference_accuracy_after"] > metrics["heldout_preference_accuracy_before"]
    assert metrics["eval_rewards_margins"] > 0  # measured against the frozen start: it did not move along
    assert (job / "outputs" / "model" / "model.safetensors").is_file()


def _built(job_dir: Path, method: str) -> tuple[Any, Any]:
    """The DPO trainer of a job, built in this process (no training) and the start model it got."""
    from nocodetune.records.job import read_resolved
    from nocodetune.training.auto import resolve_runtime
    from nocodetune.training.models import load_start
    from nocodetune.training.runner import load_examples
    from nocodetune.training.trainer_setup import training_args
    from nocodetune.training.workflows import dpo
    from nocodetune.workspace import JobPaths

    paths = JobPaths(job_dir)
    job = read_resolved(paths)
    rt = resolve_runtime(job.config)
    start = load_start(job, paths, dtype=rt.dtype, attn=rt.attn_implementation)
    _, train, evals = load_examples(job, paths)
    data, _ = dpo.prepare(job, start.tokenizer, start, train, evals)
    trainer = dpo.build_trainer(job, rt, start.model, start.tokenizer, data, training_args(job, rt, paths.checkpoints, True), [])
    return trainer, start


def test_lora_dpo_reference_is_the_model_with_its_adapter_off_and_full_dpo_a_frozen_copy(job_factory):
    import torch

    lora_trainer, _ = _built(job_factory("ref_lora", rows=preference_rows(), config={"objective": "dpo"}), "lora")
    assert lora_trainer.ref_model is None  # no second copy: TRL disables the adapter for the reference pass
    assert list(lora_trainer.model.peft_config) == ["default"]  # and no "ref" adapter copy either

    full_trainer, start = _built(job_factory("ref_full", rows=preference_rows(), config={"objective": "dpo", "method": "full"}), "full")
    reference = full_trainer.ref_model
    assert reference is not None and reference is not full_trainer.model
    assert not any(p.requires_grad for p in reference.parameters())
    for (name, ref_param), (_, param) in zip(reference.named_parameters(), full_trainer.model.named_parameters()):
        assert torch.equal(ref_param, param), name  # the start weights, not a reload from the base folder


def test_sft_data_with_a_preference_objective_fails_naming_the_format(job_factory):
    job = job_factory("dpo_on_sft_rows", config={"objective": "dpo"})  # prompt/completion rows
    assert run_training(job).returncode == 1
    failed = events_of(job)[-1]
    assert failed["type"] == "failed" and failed["kind"] == "data" and failed["field"] == "dataset.format"
    assert "preference pairs" in failed["error"] and "prompt_completion" in failed["error"]
    assert "started" not in {e["type"] for e in events_of(job)}


def test_memory_estimate_counts_the_reference_copy_only_for_full_dpo():
    from nocodetune.config.validate import estimate_memory_gb
    from nocodetune.records.schema import JobConfig

    dims = {"params": 134_515_008, "hidden_size": 576, "num_hidden_layers": 30, "intermediate_size": 1536, "vocab_size": 49152,
            "num_attention_heads": 9, "num_key_value_heads": 3}  # SmolLM2-135M

    def estimate(**config: Any) -> dict[str, Any]:
        return estimate_memory_gb(JobConfig.model_validate(config), dims)

    sft_full, dpo_full = estimate(method="full"), estimate(method="full", objective="dpo")
    assert dpo_full["reference_gb"] > 0 and sft_full["reference_gb"] == 0
    assert dpo_full["total_bytes"] - sft_full["total_bytes"] >= dims["params"] * 4  # a whole fp32 copy more
    dpo_lora, sft_lora = estimate(method="lora", objective="dpo"), estimate(method="lora")
    assert dpo_lora["reference_gb"] == 0  # the adapter switched off is the reference
    assert dpo_lora["model_bytes"] == sft_lora["model_bytes"]
    assert dpo_lora["activations_gb"] > sft_lora["activations_gb"]  # chosen and rejected both run
