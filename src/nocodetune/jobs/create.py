"""Creating, cloning and deleting job folders, atomically.

A job folder is the unit of reproducibility, so it appears complete or not at all: it is
built in `ws.new_tmp_dir()` (same filesystem) and renamed into `jobs/<name>` in one step.
Any error on the way removes the staging folder; the workspace is left as it was.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nocodetune.config.inherit import resolve_config
from nocodetune.config.overrides import deep_merge
from nocodetune.records.job import (
    RESOLVED_FORMAT_VERSION,
    DatasetSnapshot,
    Lineage,
    ResolvedJob,
    iter_resolved,
    job_names,
    read_job_yaml,
    read_resolved,
    split_job_yaml,
    write_job_yaml,
)
from nocodetune.errors import ConflictError, DataError, NotFoundError
from nocodetune.jobs.spec import JobSpec
from nocodetune.workspace import JobPaths, Workspace, check_name

if TYPE_CHECKING:
    from filelock import BaseFileLock

# Libraries whose versions change what a job does; recorded in resolved.json.
RECORDED_DISTRIBUTIONS = ("nocodetune", "torch", "transformers", "trl", "peft", "accelerate", "datasets", "tokenizers", "gguf")


def library_versions() -> dict[str, str]:
    """Installed versions from distribution metadata (no imports: torch would cost seconds)."""
    versions = {"python": platform.python_version()}
    for dist in RECORDED_DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


# -- datasets -----------------------------------------------------------------------


def snapshot_dir_name(name: str, version: int) -> str:
    return f"{name}@{version}"


def resolve_dataset(ws: Workspace, ref: str) -> DatasetSnapshot:
    """The exact version a ref names (latest when no @version), as a snapshot entry."""
    from nocodetune.data.store import DatasetStore

    store = DatasetStore(ws)
    name, version = store.parse_ref(ref)
    meta = store.version(name, version)
    return meta.snapshot(f"files/{snapshot_dir_name(meta.name, meta.version)}/{meta.file}")


# -- planning -----------------------------------------------------------------------


def plan_job(ws: Workspace, spec: JobSpec) -> ResolvedJob:
    """Resolve a spec into the ResolvedJob it would create; writes nothing.

    Raises ConfigError for bad settings and NotFoundError for a missing base, parent or
    dataset version (naming what exists).
    """
    ws.require()
    check_name(spec.name, "job name")
    for kind, value in (("base job", spec.base), ("parent job", spec.parent)):
        if value is not None:
            check_name(value, kind)
    inherited = resolve_config(ws, base=spec.base, parent=spec.parent, overrides=spec.config_overrides())
    config = inherited.config
    datasets: list[DatasetSnapshot] = []
    if config.dataset.ref:
        snapshot = resolve_dataset(ws, config.dataset.ref)
        datasets.append(snapshot)
        # Pin "name" to "name@version": training and child jobs see exactly this version.
        config = config.model_copy(update={"dataset": config.dataset.model_copy(update={"ref": f"{snapshot.name}@{snapshot.version}"})})
    return ResolvedJob(
        format_version=RESOLVED_FORMAT_VERSION,
        name=spec.name,
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        config=config,
        datasets=datasets,
        lineage=Lineage(
            base=inherited.base,
            base_chain=inherited.base_chain,
            parent=inherited.parent,
            parent_chain=inherited.parent_chain,
            parent_dir=str(inherited.parent_dir) if inherited.parent_dir else None,
        ),
        sources=inherited.sources,
        versions=library_versions(),
    )


# -- creation -----------------------------------------------------------------------


def _creation_lock(ws: Workspace) -> BaseFileLock:
    """Serialises the duplicate check and the final rename across processes."""
    from filelock import FileLock

    ws.tmp.mkdir(parents=True, exist_ok=True)
    return FileLock(str(ws.tmp / "jobs-create.lock"), timeout=60)


def _refuse_existing(ws: Workspace, name: str) -> JobPaths:
    paths = ws.job(name)
    if paths.root.exists():
        raise ConflictError(f"job {name!r} already exists", field="name", hint=f"choose another name, or delete the old job first: `nocodetune job delete {name}`")
    return paths


def create_job(ws: Workspace, spec: JobSpec) -> ResolvedJob:
    """Create jobs/<name> (job.yaml, resolved.json, files/ snapshot, outputs/, logs/) atomically."""
    ws.require()
    _refuse_existing(ws, check_name(spec.name, "job name"))
    resolved = plan_job(ws, spec)
    staging = ws.new_tmp_dir(f"job-{spec.name}-")
    try:
        _stage(ws, spec, resolved, JobPaths(staging))
        with _creation_lock(ws):
            target = _refuse_existing(ws, spec.name)
            os.rename(staging, target.root)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return resolved


def _stage(ws: Workspace, spec: JobSpec, resolved: ResolvedJob, stage: JobPaths) -> None:
    from nocodetune.data.store import DatasetStore

    write_job_yaml(stage.job_yaml, spec.job_yaml())
    stage.files.mkdir()
    store = DatasetStore(ws) if resolved.datasets else None
    for snap in resolved.datasets:
        store.snapshot_into(snap.name, snap.version, stage.files)  # type: ignore[union-attr]  # → files/<name>@<v>/
        if not (stage.root / snap.file).is_file():
            raise NotFoundError(f"dataset snapshot {snap.file} is missing after copying {snap.name}@{snap.version}", file=snap.file)
    stage.outputs.mkdir()
    stage.logs.mkdir()
    resolved.write(stage.resolved_json)


# -- clone and delete ---------------------------------------------------------------


def asked_config(ws: Workspace, name: str) -> dict[str, Any]:
    """What job `name` asked for (its job.yaml); {} for a job folder without one."""
    paths = require_job(ws, name)
    return read_job_yaml(paths.job_yaml, f"jobs/{name}/job.yaml") if paths.job_yaml.is_file() else {}


def require_job(ws: Workspace, name: str) -> JobPaths:
    paths = ws.job(name)
    if not paths.resolved_json.is_file():
        raise NotFoundError(f"job {name!r} does not exist", field="name", hint=f"existing jobs: {', '.join(job_names(ws)) or 'none'}")
    return paths


def clone_job(
    ws: Workspace,
    src: str,
    new_name: str,
    overrides: dict[str, Any] | None = None,
    set_values: dict[str, Any] | None = None,
    description: str | None = None,
) -> ResolvedJob:
    """A new job with the same base, parent, dataset version and overrides as `src`, plus changes."""
    asked = asked_config(ws, src)
    source = read_resolved(ws.job(src))
    meta, asked_overrides = split_job_yaml(asked)
    # The clone trains on exactly the data its source used, even if a newer version exists.
    if source.config.dataset.ref:
        asked_overrides = deep_merge(asked_overrides, {"dataset": {"ref": source.config.dataset.ref}})
    spec = JobSpec(
        name=new_name,
        base=meta.get("base") or source.lineage.base,
        parent=meta.get("parent"),
        description=description,
        overrides=deep_merge(asked_overrides, overrides or {}),
        set=set_values or {},
    )
    return create_job(ws, spec)


def children_of(ws: Workspace, name: str) -> list[str]:
    """Jobs that name `name` as their parent."""
    return [other for other, resolved in iter_resolved(ws) if resolved.lineage.parent == name]


def delete_job(ws: Workspace, name: str, *, force: bool = False) -> list[str]:
    """Delete jobs/<name>; refused while it runs, or while jobs descend from it unless `force`.

    Returns the child jobs that were left pointing at a deleted parent (only with force).
    The folder is first renamed into the staging area, so it vanishes in one step.
    """
    from nocodetune.jobs.lock import RunLock, is_locked

    paths = require_job(ws, name)
    if is_locked(paths.lock_file):
        raise ConflictError(f"job {name!r} is running", field="name", hint=f"cancel it first: `nocodetune job cancel {name}`")
    children = children_of(ws, name)
    if children and not force:
        raise ConflictError(
            f"job {name!r} is the parent of {', '.join(children)}",
            field="name",
            hint="delete those first, or pass --force (they keep their config but cannot resume from this job's outputs)",
        )
    try:
        lock = RunLock(paths.lock_file, name).acquire()  # held while deleting: no run can start meanwhile
    except ConflictError:
        raise ConflictError(f"job {name!r} started running just now", field="name", hint=f"cancel it first: `nocodetune job cancel {name}`") from None
    trash = ws.new_tmp_dir(f"deleted-{name}-")
    try:
        os.rename(paths.root, trash / name)
    finally:
        lock.release()
    shutil.rmtree(trash, ignore_errors=True)
    return children


# -- legacy import ------------------------------------------------------------------


def dataset_name_for(path: Path) -> str:
    """A safe dataset name from a file name (reviews v2.csv → reviews_v2)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", path.stem).strip("._-")[:100] or "dataset"
    return check_name(stem, "dataset name")


def import_legacy_job(ws: Workspace, file: Path, name: str, dataset: str | None = None) -> tuple[ResolvedJob, list[str]]:
    """Create a job from an original NoCodeTune job_args.json; returns it and the import notes.

    The data file the legacy job names (relative to the JSON file) is added to the dataset
    store when no --dataset is given. Everything else is checked before it is added.
    """
    from nocodetune.config.legacy import load_legacy

    ws.require()
    legacy = load_legacy(file)
    notes = list(legacy.notes)
    spec = JobSpec(name=name, base=legacy.base, overrides=legacy.overrides, dataset=dataset)
    _refuse_existing(ws, check_name(name, "job name"))
    data_path: Path | None = None
    if dataset is None and legacy.dataset_file:
        data_path = Path(legacy.dataset_file).expanduser()
        if not data_path.is_absolute():
            data_path = file.resolve().parent / data_path
        if not data_path.is_file():
            raise DataError(
                f"{file.name}: {legacy.dataset_key} names {legacy.dataset_file!r}, which does not exist",
                field=legacy.dataset_key,
                file=str(data_path),
                hint="pass the data with --dataset NAME@VERSION (add it first with `nocodetune data add`)",
            )
    plan_job(ws, spec)  # settings, base and dataset errors surface before anything is written
    if data_path is not None:
        from nocodetune.data.store import DatasetStore

        added = DatasetStore(ws).add(data_path, dataset_name_for(data_path))
        ref = f"{added.meta.name}@{added.meta.version}"
        notes.append(f"{legacy.dataset_key} added as dataset {ref}" if added.created else f"{legacy.dataset_key} is dataset {ref} (same bytes)")
        spec = spec.model_copy(update={"dataset": ref})
    return create_job(ws, spec), notes
