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
from nocodetune.errors import ConfigError, ConflictError, DataError, NotFoundError
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


def import_legacy_jobs(
    ws: Workspace, file: Path, *, name: str | None = None, dataset: str | None = None, set_values: dict[str, Any] | None = None
) -> list[tuple[ResolvedJob, list[str]]]:
    """Create the jobs of an original NoCodeTune job_args.json, parents first; returns each with its import notes.

    Jobs are named by the file (`job_name`); `name` names a single unnamed job. The data
    file a job names (relative to the JSON file) is added to the dataset store unless
    `dataset` is given. LoRA module names of another model family are translated to the
    target model's (or refused, naming the model's real modules). All or nothing: if one
    job cannot be created, the jobs and dataset versions made so far are removed.
    """
    from nocodetune.config.legacy import load_legacy
    from nocodetune.config.overrides import dotted_to_nested

    ws.require()
    entries = load_legacy(file)
    unnamed = [e for e in entries if not e.name]
    if unnamed and (name is None or len(entries) > 1):
        raise ConfigError(
            f"{file.name}: {len(unnamed)} job(s) have no job_name", field="name",
            hint="give the job a name (the --name option, or the name field in the form)" if len(entries) == 1 else "add job_name to each job in the file",
        )
    names = [e.name or name for e in entries]
    for job_name in names:
        _refuse_existing(ws, check_name(str(job_name), "job name"))
    extra = dotted_to_nested(set_values or {})
    created_jobs: list[str] = []
    added: list[tuple[str, int]] = []
    results: list[tuple[ResolvedJob, list[str]]] = []
    try:
        for entry, job_name in zip(entries, names):
            notes = list(entry.notes)
            overrides = deep_merge(entry.overrides, extra)
            ref = dataset
            if ref is None and entry.dataset_file:
                ref, note, created = _add_legacy_data(ws, file, entry.dataset_file, entry.dataset_key or "data_path")
                notes.append(note)
                if created:
                    added.append(split_ref_pair(ref))
            spec = JobSpec(name=str(job_name), base=entry.base, parent=entry.parent, overrides=overrides, dataset=ref)
            spec, translated = _translate_modules(ws, spec)
            notes.extend(translated)
            resolved = create_job(ws, spec)
            created_jobs.append(str(job_name))
            results.append((resolved, notes))
    except BaseException:
        for job_name in reversed(created_jobs):
            delete_job(ws, job_name, force=True)
        from nocodetune.data.store import DatasetStore

        for data_name, version in added:
            DatasetStore(ws).delete_version(data_name, version, force=True)
        raise
    return results


def split_ref_pair(ref: str) -> tuple[str, int]:
    name, _, version = ref.partition("@")
    return name, int(version)


def _add_legacy_data(ws: Workspace, file: Path, named: str, key: str) -> tuple[str, str, bool]:
    """Add the data file a legacy job names (relative to the JSON file); (ref, note, newly added)."""
    from nocodetune.data.store import DatasetStore

    data_path = Path(named).expanduser()
    if not data_path.is_absolute():
        data_path = file.resolve().parent / data_path
    if not data_path.is_file():
        raise DataError(
            f"{file.name}: {key} names {named!r}, which does not exist",
            field=key,
            file=str(data_path),
            hint="add the data as a dataset first and choose it for the import",
        )
    added = DatasetStore(ws).add(data_path, dataset_name_for(data_path))
    ref = f"{added.meta.name}@{added.meta.version}"
    note = f"{key} added as dataset {ref}" if added.created else f"{key} is dataset {ref} (same bytes)"
    return ref, note, added.created


def _translate_modules(ws: Workspace, spec: JobSpec) -> tuple[JobSpec, list[str]]:
    """lora.target_modules of another model family, renamed to the target model's modules (by role)."""
    from nocodetune.config.target_modules import describe_modules, translate
    from nocodetune.errors import ModelNotFoundError
    from nocodetune.modeling.modules import linear_module_names

    planned = plan_job(ws, spec)
    targets = planned.config.lora.target_modules
    if planned.config.method == "full" or isinstance(targets, str):
        return spec, []
    try:
        modules = linear_module_names(planned.config.model)
    except ModelNotFoundError as exc:
        return spec, [f"lora.target_modules not checked: {exc.message}"]
    result = translate(targets, modules)
    if result.unknown:
        raise ConfigError(
            f"lora.target_modules names modules {planned.config.model.source!r} does not have and that have no known equivalent: "
            f"{', '.join(repr(u) for u in result.unknown)}; its linear modules are: {describe_modules(modules)}",
            field="lora.target_modules",
        )
    if not result.notes:
        return spec, []
    return spec.model_copy(update={"overrides": deep_merge(spec.overrides, {"lora": {"target_modules": result.targets}})}), result.notes
