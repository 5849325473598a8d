"""Importing the original NoCodeTune job_args.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest

from nocodetune.config.legacy import map_legacy
from nocodetune.records.job import ResolvedJob
from nocodetune.errors import ConfigError
from nocodetune.workspace import Workspace
from tests.config.conftest import PAIRS, job_folders, write_jsonl

LEGACY = {
    "train_type": "peft_train",
    "model_name_or_path": "HuggingFaceTB/SmolLM2-135M-Instruct",
    "training_args": {
        "output_dir": "/old/outputs",
        "logging_dir": "/old/logs",
        "learning_rate": 1e-4,
        "num_train_epochs": 2,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 4,
        "max_seq_length": 256,
        "report_to": "none",
        "save_strategy": "epoch",
    },
    "peft_args": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.1, "target_modules": ["q_proj", "v_proj"], "bias": "none", "task_type": "CAUSAL_LM"},
}


def test_map_good_file() -> None:
    result = map_legacy(LEGACY)
    assert result.base == "lora_train"
    assert result.overrides == {
        "training": {"learning_rate": 1e-4, "num_train_epochs": 2, "per_device_train_batch_size": 2, "gradient_accumulation_steps": 4, "max_length": 256},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"], "bias": "none"},
        "model": {"source": "HuggingFaceTB/SmolLM2-135M-Instruct"},
    }
    noted = " ".join(result.notes)
    for key in ("training_args.output_dir", "training_args.logging_dir", "training_args.report_to", "peft_args.task_type"):
        assert key in noted


def test_full_train_maps_to_full_base() -> None:
    assert map_legacy({"train_type": "full_train", "training_args": {"learning_rate": 1e-5}}).base == "full_train"


def test_unmappable_keys_are_refused_by_name() -> None:
    data = {**LEGACY, "use_flash_magic": True, "training_args": {**LEGACY["training_args"], "label_smoothing_factor": 0.1}}
    with pytest.raises(ConfigError) as err:
        map_legacy(data)
    assert "training_args.label_smoothing_factor" in err.value.message and "use_flash_magic" in err.value.message


def test_unknown_train_type_and_bad_values_are_refused() -> None:
    with pytest.raises(ConfigError, match="train_type"):
        map_legacy({"train_type": "rlhf"})
    with pytest.raises(ConfigError) as err:
        map_legacy({"train_type": "full_train", "training_args": {"learning_rate": "fast"}})
    assert "training.learning_rate" in err.value.message


def test_cli_import_adds_the_named_data_file(ws: Workspace, cli: Callable[..., Any], tmp_path: Path) -> None:
    write_jsonl(tmp_path / "train data.jsonl", [{"prompt": p, "completion": c} for p, c in PAIRS])
    job_args = tmp_path / "job_args.json"
    job_args.write_text(json.dumps({**LEGACY, "data_path": "train data.jsonl"}))
    result = cli("job", "import", str(job_args), "--name", "old")
    assert result.exit_code == 0, result.output
    assert "output_dir ignored" in result.text
    assert "Imported job old" in result.text
    resolved = ResolvedJob.read(ws.job("old").resolved_json)
    assert resolved.lineage.base == "lora_train"
    assert resolved.config.lora.alpha == 16 and resolved.config.training.max_length == 256
    assert resolved.config.dataset.ref == "train_data@1"
    assert (ws.job("old").files / "train_data@1").is_dir()


def test_cli_import_refusal_changes_nothing(ws: Workspace, cli: Callable[..., Any], tmp_path: Path, dataset: str) -> None:
    job_args = tmp_path / "job_args.json"
    job_args.write_text(json.dumps({**LEGACY, "mystery": 1}))
    before = job_folders(ws)
    result = cli("job", "import", str(job_args), "--name", "old", "--dataset", dataset)
    assert result.exit_code == 2
    assert "mystery" in result.text
    assert job_folders(ws) == before

    job_args.write_text(json.dumps({**LEGACY, "data_path": "missing.csv"}))
    result = cli("job", "import", str(job_args), "--name", "old")
    assert result.exit_code == 2 and "missing.csv" in result.text
    assert job_folders(ws) == before


ORIGINAL = [  # the original NoCodeTune's job_args.json: a list of jobs, child listed before its parent
    {
        "job_name": "pythia_child",
        "parent_job_name": "pythia_parent",
        "base_job_name": "peft_train",
        "args": {
            "train_type": "peft_train",
            "training_args": {"learning_rate": 5e-4, "num_train_epochs": 1, "per_device_train_batch_size": 2, "output_dir": "/old/child"},
            "peft_args": {"task_type": "CAUSAL_LM"},
            "lora_configs": {"r": 4, "lora_alpha": 8, "lora_dropout": 0.0, "target_modules": ["query_key_value"]},
        },
    },
    {
        "job_name": "pythia_parent",
        "parent_job_name": None,
        "base_job_name": "peft_train",
        "args": {
            "train_type": "peft_train",
            "data_path": "train.jsonl",
            "training_args": {"learning_rate": 1e-3, "num_train_epochs": 1, "per_device_train_batch_size": 2, "max_seq_length": 64},
            "peft_args": {"task_type": "CAUSAL_LM", "inference_mode": False},
            "lora_configs": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.05, "target_modules": ["query_key_value", "dense", "dense_h_to_4h", "dense_4h_to_h"]},
        },
    },
]


def _write_original(tmp_path: Path, entries: list[dict[str, Any]]) -> Path:
    write_jsonl(tmp_path / "train.jsonl", [{"prompt": p, "completion": c} for p, c in PAIRS])
    path = tmp_path / "job_args.json"
    path.write_text(json.dumps(entries))
    return path


def test_original_job_list_imports_parents_first_with_module_names_translated(
    ws: Workspace, cli: Callable[..., Any], tmp_path: Path, tiny_model_dir: Path
) -> None:
    job_args = _write_original(tmp_path, ORIGINAL)
    result = cli("job", "import", str(job_args), "--set", f"model.source={tiny_model_dir}")
    assert result.exit_code == 0, result.output
    assert result.text.index("Imported job pythia_parent") < result.text.index("Imported job pythia_child")
    assert "'query_key_value' is named 'q_proj', 'k_proj', 'v_proj'" in result.text
    parent = ResolvedJob.read(ws.job("pythia_parent").resolved_json)
    child = ResolvedJob.read(ws.job("pythia_child").resolved_json)
    assert parent.lineage.base == "lora_train" and parent.config.training.max_length == 64
    assert parent.config.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert child.lineage.parent == "pythia_parent" and child.config.lora.target_modules == ["q_proj", "k_proj", "v_proj"]
    assert child.config.dataset.ref == parent.config.dataset.ref == "train@1"  # the child inherits its parent's data
    for job in ("pythia_parent", "pythia_child"):
        validated = cli("job", "validate", job)
        assert validated.exit_code == 0, validated.output


def test_unknown_module_names_are_refused_naming_the_real_ones_and_nothing_is_created(
    ws: Workspace, cli: Callable[..., Any], tmp_path: Path, tiny_model_dir: Path
) -> None:
    entries = json.loads(json.dumps(ORIGINAL))
    entries[0]["args"]["lora_configs"]["target_modules"] = ["mystery_proj"]
    before = job_folders(ws)
    result = cli("job", "import", str(_write_original(tmp_path, entries)), "--set", f"model.source={tiny_model_dir}")
    assert result.exit_code == 2
    assert "'mystery_proj'" in result.text and "q_proj" in result.text and "down_proj" in result.text
    assert job_folders(ws) == before  # the parent created first was removed again
    assert not (ws.files / "train").exists()  # and so was the dataset it added


def test_validate_refuses_module_names_the_model_does_not_have(ws: Workspace, cli: Callable[..., Any], dataset: str, tiny_model_dir: Path) -> None:
    made = cli("job", "create", "m", "--dataset", dataset, "--set", f"model.source={tiny_model_dir}", "--set", "lora.target_modules=[query_key_value, v_proj]")
    assert made.exit_code == 0, made.output
    result = cli("job", "validate", "m")
    assert result.exit_code == 1
    assert "'query_key_value'" in result.text and "'q_proj', 'k_proj', 'v_proj'" in result.text and "lora.target_modules" in result.text
