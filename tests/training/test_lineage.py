"""A job's model is the same wherever it is used: trained, sampled, served, or loaded elsewhere.

A grandchild LoRA job (base → LoRA → LoRA → LoRA) and a LoRA child of a full fine-tune
are trained for real on the tiny model; the model server must answer at temperature 0
exactly what each job's own after-training samples say, and the adapter folder must
name its base by identity (not this machine's cache path).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.conftest import build, live_server
from tests.training.conftest import make_job, prompt_completion_rows, run_training

SAMPLES = {"output": {"num_samples": 4, "sample_max_new_tokens": 12}, "evaluation": {"max_new_tokens": 12}}


def _train(tmp_path: Path, model_dir: Path, name: str, parent: Path | None, method: str = "lora", seed: int = 0) -> Path:
    rows = prompt_completion_rows(24)
    job = make_job(tmp_path / "jobs", name, rows, model_dir, parent_dir=parent, config={"method": method, "training": {"seed": seed, "learning_rate": 5e-3}, **SAMPLES})
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-3000:]
    return job


def _after_samples(job: Path) -> list[dict[str, Any]]:
    lines = (job / "outputs" / "samples.jsonl").read_text(encoding="utf-8").splitlines()
    return [s for s in map(json.loads, lines) if s["stage"] == "after"]


def _served_answers(job: Path, prompts: list[str]) -> list[str]:
    app = build(job_dir=job, name=job.name)
    with live_server(app) as url:
        return [
            httpx.post(
                f"{url}/v1/chat/completions",
                json={"model": job.name, "messages": [{"role": "user", "content": p}], "temperature": 0, "max_tokens": 12},
                timeout=120,
            ).json()["choices"][0]["message"]["content"]
            for p in prompts
        ]


def test_grandchild_lora_serves_what_it_sampled(tmp_path: Path, tiny_model_dir: Path) -> None:
    first = _train(tmp_path, tiny_model_dir, "first", None, seed=1)
    second = _train(tmp_path, tiny_model_dir, "second", first, seed=2)
    third = _train(tmp_path, tiny_model_dir, "third", second, seed=3)
    samples = _after_samples(third)
    assert samples
    assert _served_answers(third, [s["prompt"] for s in samples]) == [s["output"] for s in samples]
    # the parents' training is in there: serving the grandchild differs from its first ancestor
    assert _served_answers(first, [s["prompt"] for s in samples]) != [s["output"] for s in samples]

    config = json.loads((third / "outputs" / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(tiny_model_dir)  # a local folder's identity is its path
    record = json.loads((third / "outputs" / "adapter" / "nocodetune_weights.json").read_text())
    assert [layer["job"] for layer in record["layers"]] == ["first", "second", "third"]
    assert all(layer["kind"] == "adapter" and len(layer["sha256"]) == 64 for layer in record["layers"])
    assert len(record["base"]["sha256"]) == 64


def test_lora_child_of_a_full_fine_tune_serves_what_it_sampled(tmp_path: Path, tiny_model_dir: Path) -> None:
    parent = _train(tmp_path, tiny_model_dir, "full_parent", None, method="full", seed=4)
    child = _train(tmp_path, tiny_model_dir, "lora_child", parent, seed=5)
    samples = _after_samples(child)
    assert _served_answers(child, [s["prompt"] for s in samples]) == [s["output"] for s in samples]
    record = json.loads((child / "outputs" / "adapter" / "nocodetune_weights.json").read_text())
    assert [(layer["job"], layer["kind"]) for layer in record["layers"]] == [("full_parent", "model"), ("lora_child", "adapter")]


def test_an_adapter_trained_on_other_adapters_is_not_served_on_its_base_alone(tmp_path: Path, tiny_model_dir: Path) -> None:
    from nocodetune.errors import ModelNotFoundError
    from nocodetune.modeling.assemble import assemble_folder

    first = _train(tmp_path, tiny_model_dir, "a", None)
    second = _train(tmp_path, tiny_model_dir, "b", first)
    with pytest.raises(ModelNotFoundError) as err:
        assemble_folder(second / "outputs" / "adapter")
    assert "trained on top of other adapters (a)" in err.value.message
    built = assemble_folder(first / "outputs" / "adapter")  # a root adapter is portable: its base is named
    assert built.base.name == str(tiny_model_dir) and [layer.job for layer in built.layers] == ["adapter"]
