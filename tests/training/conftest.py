"""Fixtures for training tests: job folders built by hand (no dependency on jobs/create.py)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from nocodetune.records.job import DatasetSnapshot, Lineage, ResolvedJob
from nocodetune.records.schema import JobConfig
from nocodetune.records.events import read_events

DATES = [
    ("March 5, 2021", "2021-03-05"),
    ("July 14, 1999", "1999-07-14"),
    ("January 1, 2000", "2000-01-01"),
    ("December 31, 2012", "2012-12-31"),
    ("May 9, 2018", "2018-05-09"),
    ("October 22, 2005", "2005-10-22"),
    ("February 3, 2023", "2023-02-03"),
    ("August 17, 1987", "1987-08-17"),
    ("June 30, 2010", "2010-06-30"),
    ("April 8, 1995", "1995-04-08"),
    ("September 12, 2001", "2001-09-12"),
    ("November 25, 2016", "2016-11-25"),
]


def prompt_completion_rows(n: int = 24) -> list[dict[str, str]]:
    return [{"prompt": f"Convert to ISO: {w}", "completion": iso} for w, iso in (DATES * (n // len(DATES) + 1))[:n]]


def make_job(
    root: Path,
    name: str,
    rows: list[dict[str, Any]],
    model_dir: Path,
    *,
    config: dict[str, Any] | None = None,
    parent_dir: Path | None = None,
    file_name: str = "data.jsonl",
) -> Path:
    """A job folder as jobs/create.py would write it: resolved.json + files/ snapshot."""
    job = root / name
    (job / "files" / "data@1").mkdir(parents=True)
    data_file = job / "files" / "data@1" / file_name
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    base: dict[str, Any] = {
        "method": "lora",
        "model": {"source": str(model_dir)},
        "training": {"max_steps": 6, "per_device_train_batch_size": 4, "learning_rate": 1e-3, "logging_steps": 1, "save_steps": 3, "max_length": 64},
        "output": {"num_samples": 2, "sample_max_new_tokens": 8},
        "evaluation": {"max_new_tokens": 8},
    }
    for section, values in (config or {}).items():
        if isinstance(values, dict):
            base.setdefault(section, {}).update(values)
        else:
            base[section] = values
    resolved = ResolvedJob(
        name=name,
        created_at="2026-01-01T00:00:00Z",
        config=JobConfig.model_validate(base),
        datasets=[
            DatasetSnapshot(
                name="data", version=1, sha256=hashlib.sha256(data_file.read_bytes()).hexdigest(),
                file=f"files/data@1/{file_name}", format="jsonl", rows=len(rows), columns=list(rows[0]) if rows else [],
            )
        ],
        lineage=Lineage(base="lora_train", parent=parent_dir.name if parent_dir else None,
                        parent_chain=[parent_dir.name] if parent_dir else [], parent_dir=str(parent_dir) if parent_dir else None),
    )
    resolved.write(job / "resolved.json")
    return job


def run_training(job: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nocodetune.training", str(job)], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())


def events_of(job: Path) -> list[dict[str, Any]]:
    events, _ = read_events(job / "logs" / "events.jsonl")
    return [e.data() for e in events]


@pytest.fixture
def job_factory(tmp_path: Path, tiny_model_dir: Path) -> Callable[..., Path]:
    def factory(name: str = "job", rows: list[dict[str, Any]] | None = None, **kwargs: Any) -> Path:
        return make_job(tmp_path / "jobs", name, rows if rows is not None else prompt_completion_rows(), tiny_model_dir, **kwargs)

    return factory
