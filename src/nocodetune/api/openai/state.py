"""What the `/v1` routes share in one app: the OpenAI file and job services, the pool of
model servers started on first use, and one HTTP client to relay chat requests.

Created by the router's lifespan (FastAPI merges it into the app's, after the job service
has started) and closed with it: validation stops, and the model servers the pool
started are stopped.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool

from nocodetune.jobs.openai_jobs import OpenAIFiles, OpenAIJobs, Validator
from nocodetune.jobs.preflight import validate_in_worker
from nocodetune.servers.on_demand import ModelServerPool
from nocodetune.settings import get_settings


@dataclass
class OpenAIOptions:
    """Set as `app.state.openai_options` before the app starts to change the defaults (tests do)."""

    validate: Validator = field(default=validate_in_worker)
    model_idle_s: float | None = None  # None: NOCODETUNE_MODEL_IDLE_SECONDS
    start_wait_s: float = 300.0  # how long a chat request waits for its model server before a 503


@dataclass
class OpenAIState:
    files: OpenAIFiles
    jobs: OpenAIJobs
    servers: ModelServerPool
    http: httpx.AsyncClient


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    options: OpenAIOptions = getattr(app.state, "openai_options", None) or OpenAIOptions()
    ws = app.state.workspace
    idle_s = options.model_idle_s if options.model_idle_s is not None else get_settings().model_idle_seconds
    state = OpenAIState(
        files=OpenAIFiles(ws),
        jobs=OpenAIJobs(ws, app.state.job_service, validate=options.validate),
        servers=ModelServerPool(ws, idle_s=idle_s, start_wait_s=options.start_wait_s),
        http=httpx.AsyncClient(timeout=httpx.Timeout(None, connect=10.0)),
    )
    app.state.openai = state
    await run_in_threadpool(state.jobs.start)
    try:
        yield
    finally:
        state.jobs.stop()
        await state.http.aclose()
        await run_in_threadpool(state.servers.close)


def openai_state(request: Request) -> OpenAIState:
    return request.app.state.openai
