"""Turn registry rows and job folders into the jobs routes' response bodies."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from nocodetune import db
from nocodetune.api.deps import job_file
from nocodetune.api.jobs_models import JobDetail, JobSummary, Lineage, Metrics, OutputFile, Progress, RunInfo, Worker
from nocodetune.config.validate_resources import plan_resources
from nocodetune.records.job import ResolvedJob, read_resolved
from nocodetune.records.runs import RunRecord, list_runs
from nocodetune.db import JobRow, RunRow
from nocodetune.errors import NotFoundError, UnsafeNameError
from nocodetune.records.events import latest_run_events, read_events
from nocodetune.jobs.registry import row_summary
from nocodetune.records.events import PROGRESS_KEYS
from nocodetune.workspace import Workspace, resolve_within


def summary(row: JobRow) -> JobSummary:
    data = row_summary(row)
    data["progress"] = Progress(**{key: getattr(row, key) for key in PROGRESS_KEYS})
    return JobSummary(**data)


def detail(ws: Workspace, row: JobRow) -> JobDetail:
    from nocodetune.jobs.create import children_of

    paths = ws.job(row.name)
    job_file(ws, row.name, paths.resolved_json)  # a planted link is refused before anything is read
    resolved = read_resolved(paths)
    with db.session(ws) as s:
        runs = list(s.scalars(select(RunRow).where(RunRow.job_id == row.id).order_by(RunRow.n)))
    model = next((p for p in (paths.merged_dir, paths.model_dir, paths.adapter_dir) if p.is_dir() and any(p.iterdir())), None)
    records = {r.n: r for r in list_runs(paths)}  # executor ids and world sizes live in the run records
    return JobDetail(
        **summary(row).model_dump(),
        config=resolved.config.model_dump(mode="json"),
        sources=resolved.sources,
        lineage=Lineage(
            base=resolved.lineage.base,
            base_chain=resolved.lineage.base_chain,
            parent=resolved.lineage.parent,
            parent_chain=resolved.lineage.parent_chain,
            children=children_of(ws, row.name),
        ),
        datasets=[d.model_dump() for d in resolved.datasets],
        runs=[
            RunInfo(
                n=r.n, executor=r.executor, pid=r.pid, gpu=r.gpu, status=r.status, exit_code=r.exit_code,
                started_at=db.as_utc(r.started_at), ended_at=db.as_utc(r.ended_at), log_file=r.log_file,
                world_size=records[r.n].world_size if r.n in records else 1,
                executor_ref=records[r.n].executor_ref if r.n in records else None,
                executor_address=records[r.n].executor_address if r.n in records else None,
            )
            for r in runs
        ],
        model_path=str(model.relative_to(paths.root)) if model else None,
        **_workers(ws, row, resolved, records),
    )


def _workers(ws: Workspace, row: JobRow, resolved: ResolvedJob, records: dict[int, RunRecord]) -> dict[str, Any]:
    """executor, world_size and workers: of the current run when there is one, else the resources plan."""
    current = records.get(row.current_run) if row.current_run else None
    started = [e for e in latest_run_events(ws.job(row.name).events) if e.type == "started"]
    workers = [Worker.model_validate(w) for w in (started[-1].data().get("workers") or [])] if started else []
    if current is not None:
        return {"executor": "ray" if current.executor == "ray" else "local", "world_size": current.world_size, "workers": workers}
    plan = plan_resources(resolved.config)
    return {"executor": plan.executor, "world_size": plan.world_size, "workers": workers}


def log_tail(ws: Workspace, name: str, run: int | None, tail: int) -> tuple[int | None, str | None, list[str]]:
    paths = ws.job(name)
    logs = paths.run_logs()
    if run is not None:
        path = paths.run_log(run)
        if not path.is_file():
            raise NotFoundError(f"job {name!r} has no run {run}", field="run", hint=f"runs with logs: {', '.join(p.stem for p in logs) or 'none'}")
    elif logs:
        path = logs[-1]
    else:
        return None, None, []
    number = int(path.stem.split("-")[1])
    lines = job_file(ws, name, path).read_text(encoding="utf-8", errors="replace").splitlines()
    return number, str(path.relative_to(paths.root)), lines[-tail:] if tail else []


def metrics(ws: Workspace, name: str) -> Metrics:
    paths = ws.job(name)
    values: dict[str, Any] | None = None
    if paths.metrics_json.is_file():
        try:
            values = json.loads(job_file(ws, name, paths.metrics_json).read_text(encoding="utf-8"))
        except (ValueError, RecursionError):
            values = None  # being written
    events, _ = read_events(job_file(ws, name, paths.events))
    last_start = max((i for i, e in enumerate(events) if e.type == "started"), default=0)
    history = [e.data() for e in events[last_start:] if e.type in ("log", "eval")]
    return Metrics(metrics=values, history=history)


def samples(ws: Workspace, name: str) -> list[dict[str, Any]]:
    path = ws.job(name).samples_jsonl
    if not path.is_file():
        return []
    out = []
    for line in job_file(ws, name, path).read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            out.append(json.loads(line))
        except (ValueError, RecursionError):
            continue
    return out


def output_files(ws: Workspace, name: str) -> list[OutputFile]:
    """Every output file a person may want that the download route would serve.

    Links that leave outputs/ are not listed; hidden files and folders (`.heldout_before.json`,
    staging folders) are the trainer's own working files and are not listed either.
    """
    from nocodetune.jobs.exports import listed_files

    if not ws.job(name).outputs.is_dir():
        return []
    root = job_file(ws, name, "outputs")
    files = []
    for folder, dirs, names in os.walk(root):  # links to folders are not followed
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for file_name in sorted(n for n in names if not n.startswith(".")):
            path = Path(folder) / file_name
            try:
                target = resolve_within(root, path, "outputs")
            except UnsafeNameError:
                continue
            if not target.is_file():
                continue
            stat = target.stat()
            files.append(OutputFile(path=path.relative_to(root).as_posix(), size=stat.st_size, modified=datetime.fromtimestamp(stat.st_mtime, timezone.utc)))
    files.extend(OutputFile(path=path, size=size, modified=modified) for path, size, modified in listed_files(ws, name))  # exports/<id>/<file>
    return sorted(files, key=lambda f: f.path)


def output_path(ws: Workspace, name: str, relative: str) -> Path:
    """The file `relative` inside the job's outputs (or a finished export's, `exports/<id>/...`); refuses anything that leaves them."""
    from nocodetune.jobs.exports import listed_file

    exported = listed_file(ws, name, relative)
    if exported is not None and exported.is_file():
        return exported
    outputs = job_file(ws, name, "outputs")
    target = resolve_within(outputs, relative, f"the outputs of job {name!r}")
    if not target.is_file():
        raise NotFoundError(f"job {name!r} has no output {relative!r}", file=relative, hint=f"list them with GET /api/jobs/{name}/outputs")
    return target
