"""Fixtures for config/job-creation tests: an initialised workspace, a dataset, a CLI runner."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Callable

import pytest
from typer.testing import CliRunner, Result

from nocodetune.workspace import Workspace

PAIRS = [
    ("Convert to ISO: March 5, 2021", "2021-03-05"),
    ("Convert to ISO: 1 January 2020", "2020-01-01"),
    ("Convert to ISO: June 7, 1999", "1999-06-07"),
    ("Convert to ISO: 12 May 2011", "2011-05-12"),
    ("Convert to ISO: October 9, 2015", "2015-10-09"),
    ("Convert to ISO: 3 August 2003", "2003-08-03"),
    ("Convert to ISO: February 28, 2024", "2024-02-28"),
    ("Convert to ISO: 30 April 2010", "2010-04-30"),
    ("Convert to ISO: July 4, 1976", "1976-07-04"),
    ("Convert to ISO: 15 September 2022", "2022-09-15"),
]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def ws(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Workspace:
    """An initialised workspace. The shipped demo assets are swapped for small test ones,
    so these tests do not depend on what the package ships in assets/demo/."""
    from nocodetune.jobs import bootstrap

    demo_dir = tmp_path / "demo-assets"
    demo_dir.mkdir()
    write_jsonl(demo_dir / "demo_dataset.jsonl", [{"prompt": p, "completion": c} for p, c in PAIRS])
    (demo_dir / "job.yaml").write_text("base: lora_train\ndescription: demo\ndataset:\n  ref: demo\ntraining:\n  max_steps: 5\n", encoding="utf-8")
    monkeypatch.setattr(bootstrap, "DEMO_DATASET_FILE", demo_dir / "demo_dataset.jsonl")
    monkeypatch.setattr(bootstrap, "DEMO_JOB_FILE", demo_dir / "job.yaml")
    bootstrap.init_workspace(workspace_dir)
    return Workspace(workspace_dir)


@pytest.fixture
def dataset(ws: Workspace, tmp_path: Path) -> str:
    """Dataset 'dates' v1 (10 prompt/completion rows); returns its ref."""
    from nocodetune.data.store import DatasetStore

    src = write_jsonl(tmp_path / "dates.jsonl", [{"prompt": p, "completion": c} for p, c in PAIRS])
    return DatasetStore(ws).add(src, "dates").meta.ref


@pytest.fixture
def cli(ws: Workspace) -> Callable[..., Result]:
    """Run `nocodetune --workspace WS ARGS...`; `.text` is the output without table borders and
    with whitespace collapsed, since Rich wraps lines at the terminal width."""
    from nocodetune.cli.main import app

    runner = CliRunner()

    def invoke(*args: str, input: str | None = None) -> Result:
        result = runner.invoke(app, ["--workspace", str(ws.root), *args], input=input)
        plain = re.sub("[\u2500-\u257f]", " ", result.output)  # table borders
        result.text = " ".join(plain.split())  # type: ignore[attr-defined]
        return result

    return invoke


def job_folders(ws: Workspace) -> list[str]:
    return sorted(p.name for p in ws.jobs.iterdir())


def staging_leftovers(ws: Workspace) -> list[str]:
    """Job or deletion staging folders left in .tmp (lock files do not count)."""
    return sorted(p.name for p in ws.tmp.iterdir() if p.is_dir() and p.name.startswith(("job-", "deleted-", "base-")))
