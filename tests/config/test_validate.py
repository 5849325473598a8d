"""Pre-flight validation: format detection, empty rows, tokens, steps, memory, model checks."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Callable

import pytest

from nocodetune.config.validate import preflight
from nocodetune.data.store import DatasetStore
from nocodetune.jobs.create import create_job, plan_job
from nocodetune.jobs.spec import JobSpec
from nocodetune.workspace import Workspace
from tests.config.conftest import PAIRS, write_jsonl


def _tokens(model_dir: Path, rows: list[dict[str, Any]]) -> list[int]:
    """Token count of each row as the user's model sees it: the chat template, then the tokenizer."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    out = []
    for r in rows:
        text = tok.apply_chat_template([{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}], tokenize=False)
        out.append(len(tok(text, add_special_tokens=False)["input_ids"]))
    return out


@pytest.fixture
def tiny_set(tiny_model_dir: Path) -> Callable[..., dict[str, Any]]:
    def settings(**extra: Any) -> dict[str, Any]:
        return {
            "model.source": str(tiny_model_dir),
            "training.eval_split": 0.2,
            "training.per_device_train_batch_size": 2,
            "training.gradient_accumulation_steps": 2,
            "training.num_train_epochs": 3,
            **extra,
        }

    return settings


def test_report_numbers_on_a_small_dataset(ws: Workspace, dataset: str, tiny_model_dir: Path, tiny_set: Callable[..., dict[str, Any]]) -> None:
    rows = [{"prompt": p, "completion": c} for p, c in PAIRS]
    lengths = _tokens(tiny_model_dir, rows)
    limit = sorted(lengths)[5]
    create_job(ws, JobSpec(name="v", dataset=dataset, set=tiny_set(**{"training.max_length": limit})))
    from nocodetune.records.job import ResolvedJob

    report = preflight(ws, ResolvedJob.read(ws.job("v").resolved_json), ws.job("v").root)
    assert report.ok, report.errors
    s = report.stats
    assert (s["rows"], s["train_rows"], s["eval_rows"]) == (10, 8, 2)
    assert (s["steps_per_epoch"], s["total_steps"]) == (2, 6)  # 8 rows / (2 x 2) per step, 3 epochs
    assert s["format"] == "prompt_completion"
    assert s["tokens"]["max"] == max(lengths)
    assert s["tokens"]["mean"] == round(sum(lengths) / len(lengths), 1)
    over = sum(n > limit for n in lengths)
    assert over > 0 and s["tokens"]["over_max_length"] == over
    assert any(w.field == "training.max_length" and f"{over} of 10" in w.message for w in report.warnings)

    from transformers import AutoModelForCausalLM

    assert s["parameters"] == AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)).num_parameters()
    assert 0 < s["memory"]["total_bytes"] < 2**30


def test_max_steps_wins_over_epochs(ws: Workspace, dataset: str, tiny_set: Callable[..., dict[str, Any]]) -> None:
    report = preflight(ws, plan_job(ws, JobSpec(name="m", dataset=dataset, set=tiny_set(**{"training.max_steps": 11}))))
    assert report.stats["total_steps"] == 11


def test_full_training_needs_more_memory_than_lora(ws: Workspace, dataset: str, tiny_set: Callable[..., dict[str, Any]]) -> None:
    full = preflight(ws, plan_job(ws, JobSpec(name="f", base="full_train", dataset=dataset, set=tiny_set())))
    lora = preflight(ws, plan_job(ws, JobSpec(name="l", base="lora_train", dataset=dataset, set=tiny_set())))
    assert full.stats["memory"]["model_bytes"] > lora.stats["memory"]["model_bytes"]


def test_empty_rows_are_named(ws: Workspace, tmp_path: Path, tiny_set: Callable[..., dict[str, Any]]) -> None:
    rows = [{"prompt": p, "completion": c} for p, c in PAIRS]
    rows[3]["completion"] = "   "
    rows.append({"prompt": "", "completion": "x"})
    DatasetStore(ws).add(write_jsonl(tmp_path / "holes.jsonl", rows), "holes")
    report = preflight(ws, plan_job(ws, JobSpec(name="h", dataset="holes@1", set=tiny_set())))
    assert not report.ok
    [error] = report.errors
    assert "2 of 11 rows" in error.message and "empty 'completion': rows 4" in error.message and "empty 'prompt': rows 11" in error.message
    assert report.stats["train_rows"] + report.stats["eval_rows"] == 9


def test_missing_column_is_an_error(ws: Workspace, dataset: str, tiny_set: Callable[..., dict[str, Any]]) -> None:
    report = preflight(ws, plan_job(ws, JobSpec(name="c", dataset=dataset, set=tiny_set(**{"dataset.columns.prompt": "question"}))))
    assert not report.ok
    assert report.errors[0].field == "dataset.columns.prompt"
    assert "'question'" in report.errors[0].message and "prompt, completion" in report.errors[0].message


def test_missing_model_is_an_error(ws: Workspace, dataset: str, tmp_path: Path) -> None:
    report = preflight(ws, plan_job(ws, JobSpec(name="m", dataset=dataset, set={"model.source": str(tmp_path / "no-model")})))
    assert not report.ok and report.errors[0].field == "model.source"


def test_no_dataset_is_an_error(ws: Workspace, tiny_set: Callable[..., dict[str, Any]]) -> None:
    report = preflight(ws, plan_job(ws, JobSpec(name="n", set=tiny_set())))
    assert not report.ok and report.errors[0].field == "dataset.ref"


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed here")
def test_qlora_without_bitsandbytes_is_an_error(ws: Workspace, dataset: str, tiny_set: Callable[..., dict[str, Any]]) -> None:
    report = preflight(ws, plan_job(ws, JobSpec(name="q", base="qlora_train", dataset=dataset, set=tiny_set())))
    assert not report.ok
    assert any(e.field == "method" and "bitsandbytes" in e.message for e in report.errors)


def test_child_of_an_unrun_parent_gets_a_warning(ws: Workspace, dataset: str, tiny_set: Callable[..., dict[str, Any]]) -> None:
    create_job(ws, JobSpec(name="p", dataset=dataset, set=tiny_set()))
    child = plan_job(ws, JobSpec(name="c", parent="p"))
    report = preflight(ws, child)
    assert report.ok
    assert any(w.field == "parent" and "'p'" in w.message for w in report.warnings)
    (ws.job("p").adapter_dir).mkdir(parents=True)
    (ws.job("p").adapter_dir / "adapter_model.safetensors").write_bytes(b"x")
    (ws.job("p").adapter_dir / "adapter_config.json").write_text("{}")
    assert not any(w.field == "parent" for w in preflight(ws, child).warnings)


def test_cli_validate_exit_codes(ws: Workspace, dataset: str, cli: Callable[..., Any], tiny_model_dir: Path) -> None:
    ok = cli("job", "create", "good", "--dataset", dataset, "--set", f"model.source={tiny_model_dir}")
    assert ok.exit_code == 0, ok.output
    result = cli("job", "validate", "good")
    assert result.exit_code == 0, result.output
    assert "OK: ready to run" in result.text and "10 (9 train, 1 eval)" in result.text

    bad = cli("job", "create", "bad", "--dataset", dataset, "--set", f"model.source={tiny_model_dir}", "--set", "dataset.columns.completion=answer")
    assert bad.exit_code == 0, bad.output
    result = cli("job", "validate", "bad")
    assert result.exit_code == 1
    assert "dataset.columns.completion" in result.text and "Not ready" in result.text


def test_cli_validate_reports_a_preference_job_like_any_other(ws: Workspace, cli: Callable[..., Any], tiny_model_dir: Path, tmp_path: Path) -> None:
    pairs = [{"prompt": f"Write {i} in words", "chosen": f"number {i}", "rejected": str(i)} for i in range(12)]
    ref = DatasetStore(ws).add(write_jsonl(tmp_path / "pairs.jsonl", pairs), "pairs").meta.ref
    assert cli("job", "create", "prefs", "--dataset", ref, "--set", "objective=dpo", "--set", f"model.source={tiny_model_dir}").exit_code == 0
    result = cli("job", "validate", "prefs")
    assert result.exit_code == 0, result.output
    assert "format preference" in result.text and "0 over max_length" in result.text and "OK: ready to run" in result.text
