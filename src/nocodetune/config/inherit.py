"""Inheritance: schema defaults ← base job(s) ← parent job ← the job's own overrides.

A base is a reusable recipe in `archive/<base>/job.yaml` (it may itself name a `base:`).
A parent is an existing job whose trained outputs the new job continues from; it passes on
what was chosen along its lineage. Every effective value remembers where it came from
(`sources`), so `job show` can answer "why is the learning rate 2e-4?".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, Field

from nocodetune.config.overrides import deep_merge, dotted_to_nested, flatten, validate_config
from nocodetune.records.job import ResolvedJob, job_names, read_job_yaml, read_resolved, split_job_yaml
from nocodetune.records.schema import JOB_META_KEYS, JobConfig
from nocodetune.errors import ConfigError, NotFoundError
from nocodetune.workspace import JOB_YAML, Workspace, check_name

DEFAULT_BASE = "lora_train"  # used when a job names neither a base nor a parent


class InheritedConfig(BaseModel):
    """The effective config of a job and how it was put together."""

    config: JobConfig
    sources: dict[str, str] = Field(default_factory=dict)
    base: str | None = None
    base_chain: list[str] = Field(default_factory=list)
    parent: str | None = None
    parent_chain: list[str] = Field(default_factory=list)
    parent_dir: Path | None = None


# -- files --------------------------------------------------------------------------


def available_bases(ws: Workspace) -> list[str]:
    if not ws.archive.is_dir():
        return []
    return sorted(p.name for p in ws.archive.iterdir() if (p / JOB_YAML).is_file())


def _listing(names: list[str]) -> str:
    return ", ".join(names) if names else "none"


# -- bases --------------------------------------------------------------------------


def load_base_chain(ws: Workspace, name: str) -> list[tuple[str, dict[str, Any]]]:
    """[(base name, its overrides)] from the root base down to `name`; refuses cycles."""
    chain: list[tuple[str, dict[str, Any]]] = []
    seen: list[str] = []
    current: str | None = name
    while current is not None:
        check_name(current, "base job")
        if current in seen:
            raise ConfigError(f"base jobs form a cycle: {' -> '.join([*seen, current])}", field="base", file=f"archive/{current}/{JOB_YAML}")
        seen.append(current)
        path = ws.base_dir(current) / JOB_YAML
        if not path.is_file():
            raise NotFoundError(
                f"base job {current!r} does not exist",
                field="base",
                file=f"archive/{current}/{JOB_YAML}",
                hint=f"available bases: {_listing(available_bases(ws))}",
            )
        label = f"archive/{current}/{JOB_YAML}"
        meta, overrides = split_job_yaml(read_job_yaml(path, label))
        if "parent" in meta:
            raise ConfigError(f"{label}: a base job cannot name a parent (only jobs have parents)", field="parent", file=label)
        validate_config(overrides, where=label)  # blame the file that holds a bad key
        chain.append((current, overrides))
        nxt = meta.get("base")
        if nxt is not None and not isinstance(nxt, str):
            raise ConfigError(f"{label}: base must be a name, got {nxt!r}", field="base", file=label)
        current = nxt
    chain.reverse()
    return chain


# -- parents ------------------------------------------------------------------------


def load_parent(ws: Workspace, name: str) -> ResolvedJob:
    """The parent's resolved.json, or a NotFoundError listing the jobs that exist."""
    paths = ws.job(name)
    if not paths.resolved_json.is_file():
        raise NotFoundError(
            f"parent job {name!r} does not exist",
            field="parent",
            hint=f"existing jobs: {_listing(job_names(ws))}",
        )
    try:
        return read_resolved(paths)
    except ConfigError as exc:
        exc.field = "parent"
        raise


def _parent_layer(parent: ResolvedJob) -> tuple[dict[str, Any], dict[str, str]]:
    """What a parent passes on: the values chosen along its lineage, not its defaults.

    Values that came from the schema or from the parent's bases are left out so that a
    child naming a different base gets that base's recipe; with the same base (the usual
    case) the result equals the parent's full effective config.
    """
    flat = flatten(parent.config.model_dump())
    if not parent.sources:
        return parent.config.model_dump(), {k: f"parent:{parent.name}" for k in flat}
    chosen: dict[str, Any] = {}
    labels: dict[str, str] = {}
    for key, value in flat.items():
        origin = parent.sources.get(key, "schema")
        if origin == "job":
            labels[key] = f"parent:{parent.name}"
        elif origin.startswith("parent:"):
            labels[key] = origin
        else:
            continue
        chosen[key] = value
    return dotted_to_nested(chosen), labels


def _without_description(layer: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in layer.items() if k != "description"}


# -- resolution ---------------------------------------------------------------------


def resolve_config(
    ws: Workspace,
    *,
    base: str | None = None,
    parent: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> InheritedConfig:
    """Merge schema ← bases ← parent ← overrides into a validated JobConfig with sources.

    With a parent and no base, the base is the parent's base; with neither, DEFAULT_BASE.
    """
    overrides = dict(overrides or {})
    misplaced = [k for k in JOB_META_KEYS if k in overrides]
    if misplaced:
        raise ConfigError(f"{misplaced[0]} is not a setting: give it as the job's {misplaced[0]} (--{misplaced[0]} NAME), not inside the overrides", field=misplaced[0])
    parent_job = load_parent(ws, check_name(parent, "parent job")) if parent else None
    if base is None:
        base = parent_job.lineage.base if parent_job else DEFAULT_BASE

    schema_flat = flatten(JobConfig().model_dump())
    sources = {key: "schema" for key in schema_flat}
    merged: dict[str, Any] = {}

    def apply(layer: Mapping[str, Any], label: str | dict[str, str]) -> None:
        nonlocal merged
        merged = deep_merge(merged, layer)
        for key in flatten(layer):
            if key in sources:  # skips empty sections like `lora: {}`
                sources[key] = label if isinstance(label, str) else label.get(key, "job")

    # A base's or parent's description describes that recipe or job, not this one.
    chain = load_base_chain(ws, base) if base else []
    for name, layer in chain:
        apply(_without_description(layer), f"base:{name}")
    if parent_job is not None:
        layer, labels = _parent_layer(parent_job)
        apply(_without_description(layer), labels)
    if overrides:
        validate_config(overrides)  # name the user's own mistakes before merge effects
        apply(overrides, "job")

    config = validate_config(merged)
    return InheritedConfig(
        config=config,
        sources=sources,
        base=base,
        base_chain=[name for name, _ in chain],
        parent=parent_job.name if parent_job else None,
        parent_chain=[*parent_job.lineage.parent_chain, parent_job.name] if parent_job else [],
        parent_dir=ws.job(parent_job.name).root if parent_job else None,
    )
