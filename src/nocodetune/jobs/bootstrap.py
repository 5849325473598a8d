"""`nocodetune init`: a ready-to-use workspace with base jobs, a demo dataset and a demo job.

Init is safe to run twice: it creates only what is missing and never overwrites anything
a user may have edited (a base in archive/, a dataset, a job). The result says which parts
were created and which were already there, so the CLI can say "nothing changed".
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pydantic import BaseModel, Field

from nocodetune.records.job import read_job_yaml, split_job_yaml
from nocodetune.errors import NocodetuneError
from nocodetune.jobs.create import create_job
from nocodetune.jobs.spec import JobSpec
from nocodetune.workspace import JOB_YAML, LAYOUT_DIRS, Workspace

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
DEMO_DATASET_FILE = ASSETS_DIR / "demo" / "demo_dataset.jsonl"
DEMO_JOB_FILE = ASSETS_DIR / "demo" / JOB_YAML
DEMO_DATASET = "demo"
DEMO_JOB = "demo_job"


class InitResult(BaseModel):
    """What `init_workspace` did. Items read like 'archive/lora_train' or 'jobs/demo_job'."""

    root: Path
    created: list[str] = Field(default_factory=list)
    existed: list[str] = Field(default_factory=list)
    skipped: list[str] = Field(default_factory=list, description="Parts not created, with the reason.")

    @property
    def changed(self) -> bool:
        return bool(self.created)


def shipped_bases() -> list[Path]:
    """The base-job folders shipped in the package (assets/archive/<name>/job.yaml)."""
    archive = ASSETS_DIR / "archive"
    return sorted(p for p in archive.iterdir() if (p / JOB_YAML).is_file()) if archive.is_dir() else []


def init_workspace(path: Path | str) -> InitResult:
    """Create (or complete) a workspace at `path`; never overwrites existing parts."""
    ws = Workspace(path)
    if ws.root.exists() and not ws.root.is_dir():
        raise NocodetuneError(f"{ws.root} exists and is not a folder", file=str(ws.root))
    result = InitResult(root=ws.root)
    for name in LAYOUT_DIRS:
        (result.existed if (ws.root / name).is_dir() else result.created).append(f"{name}/")
    ws.create_layout()

    _copy_bases(ws, result)
    _init_registry(ws, result)
    _add_demo_dataset(ws, result)
    _create_demo_job(ws, result)
    return result


def _copy_bases(ws: Workspace, result: InitResult) -> None:
    for src in shipped_bases():
        dest = ws.archive / src.name
        label = f"archive/{src.name}"
        if dest.exists():
            result.existed.append(label)  # the user's copy wins, edited or not
            continue
        staging = ws.new_tmp_dir(f"base-{src.name}-")
        shutil.copytree(src, staging / src.name)
        (staging / src.name).rename(dest)
        shutil.rmtree(staging, ignore_errors=True)
        result.created.append(label)


def _init_registry(ws: Workspace, result: InitResult) -> None:
    """The SQL registry via nocodetune.db when present; else an empty marker file."""
    existed = ws.db_path.exists()
    try:
        from nocodetune import db
    except ImportError:
        db = None  # type: ignore[assignment]
    if db is not None and hasattr(db, "init_db"):
        db.init_db(ws)
    elif not existed:
        ws.db_path.touch()
    (result.existed if existed else result.created).append(ws.db_path.name)


def _add_demo_dataset(ws: Workspace, result: InitResult) -> None:
    label = f"files/{DEMO_DATASET}"
    if ws.dataset_dir(DEMO_DATASET).exists():
        result.existed.append(label)
        return
    if not DEMO_DATASET_FILE.is_file():
        result.skipped.append(f"{label}: the package ships no demo dataset")
        return
    from nocodetune.data.store import DatasetStore

    DatasetStore(ws).add(DEMO_DATASET_FILE, DEMO_DATASET)
    result.created.append(label)


def _create_demo_job(ws: Workspace, result: InitResult) -> None:
    label = f"jobs/{DEMO_JOB}"
    if ws.job(DEMO_JOB).root.exists():
        result.existed.append(label)
        return
    if not DEMO_JOB_FILE.is_file():
        result.skipped.append(f"{label}: the package ships no demo job")
        return
    meta, overrides = split_job_yaml(read_job_yaml(DEMO_JOB_FILE, "assets/demo/job.yaml"))
    spec = JobSpec(name=DEMO_JOB, base=meta.get("base"), parent=meta.get("parent"), overrides=overrides)
    if not spec.config_overrides().get("dataset", {}).get("ref") and ws.dataset_dir(DEMO_DATASET).exists():
        spec = spec.model_copy(update={"dataset": DEMO_DATASET})
    try:
        create_job(ws, spec)
    except NocodetuneError as exc:
        result.skipped.append(f"{label}: {exc.message}")
        return
    result.created.append(label)
