"""What every export format shares: progress reporting, the model card, files and their hashes.

The model card of an export says what the model is made of (base identity and weights
hash, each job of the lineage with its adapter hash, data snapshots with their hashes and
the metrics each job reported) so a model found on another machine can be traced back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nocodetune.errors import NocodetuneError
from nocodetune.modeling.lineage import ancestors
from nocodetune.records.exports import ExportFile
from nocodetune.records.io import read_json
from nocodetune.records.job import ResolvedJob, read_resolved
from nocodetune.records.weights import WeightsRecord
from nocodetune.workspace import JobPaths

# (stage, fraction of the whole export done 0..1, text)
Progress = Callable[[str, float, str], None]


def no_progress(stage: str, fraction: float, text: str) -> None:  # the callback's shape; reports nothing
    """A Progress that reports nothing (library use, tests)."""


@dataclass
class ExportResult:
    """What a format module reports back to the runner."""

    weights: WeightsRecord | None = None
    details: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(folder: Path) -> list[ExportFile]:
    """Every file of an export folder with its size and sha256, in name order."""
    return [
        ExportFile(path=p.relative_to(folder).as_posix(), size=p.stat().st_size, sha256=sha256_file(p))
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def lineage_jobs(paths: JobPaths) -> list[tuple[JobPaths, ResolvedJob]]:
    """The job's ancestors and the job itself, oldest first."""
    resolved = read_resolved(paths)
    return [*ancestors(resolved), (paths, resolved)]


def job_metrics(paths: JobPaths) -> dict[str, Any]:
    """outputs/metrics.json of a job, or {} when it has none (or it is unreadable)."""
    if not paths.metrics_json.is_file():
        return {}
    try:
        data = read_json(paths.metrics_json)
    except NocodetuneError:
        return {}
    return data if isinstance(data, dict) else {}


_METRIC_KEYS = ("train_loss", "eval_loss", "perplexity", "heldout_score_before", "heldout_score_after")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def model_card(paths: JobPaths, weights: WeightsRecord | None, *, kind: str, usage: str, extra: str = "") -> str:
    """README.md of an export: what it is, what it is made of, how to use it."""
    jobs = lineage_jobs(paths)
    resolved = jobs[-1][1]
    front = ["---", "library_name: " + ("peft" if kind == "adapter" else "transformers"), "tags:", "- nocodetune", "- fine-tuned"]
    if weights is not None and weights.base.kind == "hub_cache":
        front.append(f"base_model: {weights.base.name}")
    front.append("---")
    lines = [*front, "", f"# {paths.name} ({kind})", "", f"Exported by NoCodeTune from job `{paths.name}` ({resolved.config.method}, {resolved.config.objective}).", ""]
    if resolved.config.description:
        lines += [resolved.config.description.strip(), ""]
    lines += ["## Made of", ""]
    if weights is not None:
        sha = f", weights sha256 `{weights.base.sha256}`" if weights.base.sha256 else ""
        lines.append(f"- base model: `{weights.base.name}` ({weights.base.kind}{sha})")
        for layer in weights.layers:
            lines.append(f"- then job `{layer.job}`: {layer.kind}" + (f", sha256 `{layer.sha256}`" if layer.sha256 else ""))
    lines += ["", "## Data and results", "", "| job | data (name@version, sha256, rows) | " + " | ".join(_METRIC_KEYS) + " |", "|---|---|" + "---|" * len(_METRIC_KEYS)]
    for job_paths, job in jobs:
        data = "<br>".join(f"`{d.name}@{d.version}` `{d.sha256}` {d.rows if d.rows is not None else '?'} rows" for d in job.datasets) or "-"
        metrics = job_metrics(job_paths)
        lines.append(f"| {job_paths.name} | {data} | " + " | ".join(_fmt(metrics.get(k)) for k in _METRIC_KEYS) + " |")
    if resolved.config.dataset.system_prompt:
        lines += ["", "## System prompt used in training", "", "```", resolved.config.dataset.system_prompt, "```"]
    lines += ["", "## Use", "", usage.strip(), ""]
    if extra:
        lines += [extra.strip(), ""]
    return "\n".join(lines)
