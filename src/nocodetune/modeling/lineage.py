"""A job's lineage on disk: its ancestors, oldest first, and the trained output each left.

Light (no torch): the server manager uses it to describe what a model server will serve.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from nocodetune.errors import ModelNotFoundError, NotFoundError
from nocodetune.records.job import ResolvedJob, parent_paths, read_resolved
from nocodetune.workspace import JobPaths

OutputKind = Literal["merged", "model", "adapter"]


class TrainedOutput(BaseModel):
    kind: OutputKind
    folder: Path


def trained_output(paths: JobPaths) -> TrainedOutput | None:
    """The job's trained model: outputs/merged (whole lineage merged), outputs/model (full fine-tune) or outputs/adapter."""
    for kind, folder in (("merged", paths.merged_dir), ("model", paths.model_dir), ("adapter", paths.adapter_dir)):
        marker = "adapter_config.json" if kind == "adapter" else "config.json"
        if (folder / marker).is_file():
            return TrainedOutput(kind=kind, folder=folder)  # type: ignore[arg-type]
    return None


def require_output(paths: JobPaths) -> TrainedOutput:
    found = trained_output(paths)
    if found is None:
        raise NotFoundError(
            f"job {paths.name!r} has no trained model yet (no outputs/merged, outputs/model or outputs/adapter)",
            field="job",
            file=str(paths.outputs),
            hint="run the job first",
        )
    return found


def ancestors(job: ResolvedJob, job_root: Path | None = None) -> list[tuple[JobPaths, ResolvedJob]]:
    """The job's parents, oldest first, each with its resolved config (read from its own folder)."""
    chain: list[tuple[JobPaths, ResolvedJob]] = []
    seen: set[str] = set()
    current, root = job, job_root
    while (paths := parent_paths(current, root)) is not None:
        if str(paths.root) in seen:
            raise ModelNotFoundError(f"job lineage loops through {paths.name!r}", field="parent")
        seen.add(str(paths.root))
        if not paths.resolved_json.is_file():
            raise ModelNotFoundError(
                f"parent job {current.lineage.parent!r} is gone ({paths.root})", field="parent", file=str(paths.root),
                hint="a child job starts from its parent's trained model",
            )
        current, root = read_resolved(paths), paths.root
        chain.append((paths, current))
    chain.reverse()
    return chain
