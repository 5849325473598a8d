"""What route handlers need from the app: the workspace and the job service."""

from __future__ import annotations

from fastapi import Request

from nocodetune.jobs.service import JobService
from nocodetune.workspace import Workspace


def workspace(request: Request) -> Workspace:
    return request.app.state.workspace


def job_service(request: Request) -> JobService:
    """The app's job service (created by `create_app`, started by its lifespan)."""
    return request.app.state.job_service
