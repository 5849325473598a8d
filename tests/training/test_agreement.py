"""What validate accepts is what trains: the same rows, masks, refusals and step counts.

Every supported format and a set of malformed variants go through `job validate`'s
preflight and through the training process's own example builder; they must agree row
for row. Two real training runs check that validate's step count is the trainer's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nocodetune.config.validate import preflight
from nocodetune.data.tokens import tokenize_split
from nocodetune.errors import DataError
from nocodetune.records.job import read_resolved
from nocodetune.training.runner import load_examples
from nocodetune.workspace import JobPaths, Workspace
from tests.training.conftest import events_of, make_job, run_training

Q = [("Convert March 5, 2021", "2021-03-05"), ("Convert July 14, 1999", "1999-07-14"), ("Convert May 9, 2018", "2018-05-09")] * 4


def _chat(i: int, q: str, a: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": q}, {"role": "assistant", "content": a}, {"role": "user", "content": f"again {i}"}, {"role": "assistant", "content": a}]


DATASETS: dict[str, list[dict[str, Any]]] = {
    "text": [{"text": f"{q} is {a}."} for q, a in Q],
    "prompt_completion": [{"prompt": q, "completion": a} for q, a in Q],
    "alpaca": [{"instruction": "Convert the date", "input": q, "output": a} for q, a in Q],
    "openai_messages": [{"messages": [{"role": "system", "content": "Dates."}, {"role": "user", "content": q}, {"role": "assistant", "content": a}]} for q, a in Q],
    "sharegpt": [{"conversations": [{"from": "human", "value": q}, {"from": "gpt", "value": a}]} for q, a in Q],
    "multi_turn": [{"messages": _chat(i, q, a)} for i, (q, a) in enumerate(Q)],
    # malformed variants: each must be refused identically by both
    "empty_completion": [{"prompt": q, "completion": "" if i % 5 == 2 else a} for i, (q, a) in enumerate(Q)],
    "unknown_role": [{"messages": [{"role": "user", "content": q}, {"role": "narrator" if i == 3 else "assistant", "content": a}]} for i, (q, a) in enumerate(Q)],
    "messages_not_a_list": [{"messages": {"role": "user", "content": q}} if i == 0 else {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]} for i, (q, a) in enumerate(Q)],
    "ends_with_user": [{"conversations": [{"from": "human", "value": q}] + ([] if i == 7 else [{"from": "gpt", "value": a}])} for i, (q, a) in enumerate(Q)],
    "answer_truncated_away": [{"prompt": ("word " * (60 if i < 2 else 1)) + q, "completion": a} for i, (q, a) in enumerate(Q)],
}


REFUSED = {"empty_completion", "unknown_role", "messages_not_a_list", "ends_with_user"}


def _job(tmp_path: Path, tiny_model_dir: Path, name: str, rows: list[dict[str, Any]], **training: Any) -> Path:
    config = {"training": {"max_length": 48, "eval_split": 0.25, "max_steps": -1, "num_train_epochs": 1, "per_device_train_batch_size": 2, **training}}
    return make_job(tmp_path / "jobs", name, rows, tiny_model_dir, config=config)


@pytest.mark.parametrize("name", sorted(DATASETS))
def test_validate_and_training_agree_on_every_row(tmp_path: Path, tiny_model_dir: Path, name: str) -> None:
    job = _job(tmp_path, tiny_model_dir, name, DATASETS[name])
    resolved = read_resolved(JobPaths(job))
    report = preflight(Workspace(tmp_path), resolved, job)

    try:
        fmt, train, evals = load_examples(resolved, JobPaths(job))
    except DataError as refused:
        # training refuses the run with exactly the message validate reported
        assert name in REFUSED and not report.ok
        assert refused.message in [e.message for e in report.errors]
        return
    assert name not in REFUSED
    assert report.ok, report.errors
    assert report.stats["format"] == fmt
    assert (report.stats["train_rows"], report.stats["eval_rows"]) == (len(train), len(evals))

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    t = resolved.config.training
    columns, dropped = tokenize_split(train, tokenizer, t.max_length, t.completion_only_loss)
    assert report.stats["trained_examples"] == len(columns["input_ids"]) == len(train) - len(dropped)
    preview = report.stats["example_preview"]
    first = tokenize_split(_first_example(resolved, job), tokenizer, t.max_length, t.completion_only_loss)[0]  # validate previews the first row
    if first["input_ids"]:
        trained = sum(1 for label in first["labels"][0] if label != -100)
        assert preview["completion_tokens"] == trained
        assert preview["prompt_tokens"] + preview["completion_tokens"] == len(first["input_ids"][0])
    if name == "answer_truncated_away":
        assert any("will be skipped" in w.message for w in report.warnings)


def _first_example(resolved: Any, job: Path) -> list[dict[str, Any]]:
    from nocodetune.data.examples import read_examples

    return read_examples(job / resolved.datasets[0].file, resolved.config.dataset).examples[:1]


@pytest.mark.parametrize(
    "name, training",
    [
        ("prompt_completion", {"per_device_train_batch_size": 3, "gradient_accumulation_steps": 2, "num_train_epochs": 1.5}),
        ("multi_turn", {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 1, "num_train_epochs": 2}),
    ],
)
def test_validate_counts_the_steps_the_trainer_runs(tmp_path: Path, tiny_model_dir: Path, name: str, training: dict[str, Any]) -> None:
    job = _job(tmp_path, tiny_model_dir, name, DATASETS[name], save_steps=1000, logging_steps=1, **training)
    report = preflight(Workspace(tmp_path), read_resolved(JobPaths(job)), job)
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-2000:]
    started = next(e for e in events_of(job) if e["type"] == "started")
    assert report.stats["total_steps"] == started["total_steps"]
    assert json.loads((job / "outputs" / "metrics.json").read_text())["global_step"] == report.stats["total_steps"]
