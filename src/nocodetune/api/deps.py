"""What route handlers need from the app: the workspace and the job service."""

from __future__ import annotations

from pathlib import Path

from fastapi import Request

from nocodetune.jobs.service import JobService
from nocodetune.workspace import Workspace, resolve_within


def workspace(request: Request) -> Workspace:
    return request.app.state.workspace


def job_service(request: Request) -> JobService:
    """The app's job service (created by `create_app`, started by its lifespan)."""
    return request.app.state.job_service


def job_file(ws: Workspace, name: str, path: Path | str) -> Path:
    """A file of job `name` that the API may read: resolved (links included) and refused unless it
    stays inside the job's folder, which itself must stay inside the workspace's jobs/.

    Every route that reads a job's files goes through here (or `workspace.resolve_within`
    for a narrower root), so a planted symlink never serves a file from elsewhere.
    """
    root = resolve_within(ws.jobs, ws.job(name).root, "the workspace's jobs folder")
    return resolve_within(root, path, f"the folder of job {name!r}")


def workspace_file(ws: Workspace, path: Path | str) -> Path:
    """Any other file the API reads (dataset versions, server logs): must stay inside the workspace."""
    return ws.inside(path)
