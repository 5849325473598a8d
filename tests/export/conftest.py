"""A workspace with a grandchild LoRA chain trained for real on the tiny model (once per session).

`first` (LoRA on the tiny model, trained with a system prompt) → `second` (LoRA on
first's model) → `third` (LoRA on second's). Jobs are created and run the way the CLI
does (`jobs.create`, `JobService.run_foreground` with the real trainer), so exports see
what a user's workspace holds. Export tests must not change these jobs; each makes its
own exports (ids never collide).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nocodetune import db
from nocodetune.workspace import Workspace
from tests.training.conftest import DATES

SYSTEM_PROMPT = "You convert dates to ISO 8601."
JOB_SETTINGS = {
    "training.max_steps": 6,
    "training.per_device_train_batch_size": 4,
    "training.gradient_accumulation_steps": 1,
    "training.learning_rate": 5e-3,
    "training.logging_steps": 1,
    "training.max_length": 64,
    "training.eval_split": 0.0,
    "output.num_samples": 4,
    "output.sample_max_new_tokens": 12,
    "evaluation.max_new_tokens": 12,
}
PROMPTS = [f"Convert to ISO: {w}" for w, _ in DATES] + ["Hello", "What is the date today?", "Classify: great product", "0 1 2 3"]


@pytest.fixture(scope="session")
def chain_ws(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Workspace]:
    from nocodetune.data.store import DatasetStore
    from nocodetune.jobs.bootstrap import init_workspace
    from nocodetune.jobs.create import create_job
    from nocodetune.jobs.service import JobService
    from nocodetune.jobs.spec import JobSpec

    root = tmp_path_factory.mktemp("export-ws") / "ws"
    init_workspace(root)
    ws = Workspace(root)
    data = root.parent / "dates.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Convert to ISO: {w}", "completion": iso}) + "\n" for w, iso in DATES * 2), encoding="utf-8")
    DatasetStore(ws).add(data, "dates")
    service = JobService(ws, poll_s=0.2)
    parent = None
    for seed, name in enumerate(("first", "second", "third"), start=1):
        settings: dict[str, Any] = {**JOB_SETTINGS, "model.source": str(tiny_model_dir), "training.seed": seed}
        if name == "first":
            settings["dataset.system_prompt"] = SYSTEM_PROMPT
        create_job(ws, JobSpec(name=name, base="lora_train", parent=parent, dataset="dates", set=settings))
        status = service.run_foreground(name)
        log = ws.job(name).run_logs()
        assert status == "succeeded", log[-1].read_text()[-3000:] if log else status
        parent = name
    yield ws
    db.dispose_all()


def after_samples(ws: Workspace, job: str) -> list[dict[str, Any]]:
    lines = ws.job(job).samples_jsonl.read_text(encoding="utf-8").splitlines()
    return [s for s in map(json.loads, lines) if s["stage"] == "after"]


def greedy(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int = 12) -> list[list[int]]:
    """New token ids of a greedy answer to each prompt as a one-message chat, one prompt at a time."""
    import torch

    out = []
    for prompt in prompts:
        enc = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True)
        with torch.no_grad():
            ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        out.append(ids[0, enc["input_ids"].shape[1] :].tolist())
    return out
