"""Builds the FastAPI application; `routes` picks which servers it plays.

`api` = everything plus the web UI; `data` = the seed's data load server (files routes);
`jobs` = the seed's fine-tuning server (jobs routes). Apps that serve jobs own a job
service: its lifespan starts the queue and reconciles running jobs, and stops following
them on shutdown (the jobs themselves keep running and are adopted by the next start).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Iterable

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nocodetune import __version__
from nocodetune.api.auth import BearerTokenMiddleware, require_token_for
from nocodetune.errors import NocodetuneError
from nocodetune.jobs.service import JobService
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace

ROUTE_GROUPS = {
    "api": ("files", "jobs", "servers", "ui"),
    "data": ("files",),
    "jobs": ("jobs",),
}


def create_app(
    workspace: Workspace | Path | str,
    routes: Iterable[str] = ROUTE_GROUPS["api"],
    *,
    job_service: JobService | None = None,
    api_token: str | None = None,
) -> FastAPI:
    """The app for `workspace`. `job_service` replaces the default one (tests inject a fake trainer)."""
    from nocodetune.api import export_routes, files_routes, jobs_routes, servers_routes

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    routes = tuple(routes)
    token = api_token if api_token is not None else get_settings().api_token
    service = job_service or (JobService(ws) if "jobs" in routes else None)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from nocodetune import db

        await run_in_threadpool(db.init_db, ws)
        if service is not None:
            await run_in_threadpool(service.start)
        try:
            yield
        finally:
            if service is not None:
                await run_in_threadpool(service.stop)

    app = FastAPI(title="NoCodeTune", version=__version__, description="Fine-tune language models without writing code.", lifespan=lifespan)
    app.state.workspace = ws
    app.state.routes = routes
    app.state.job_service = service
    if token:
        app.add_middleware(BearerTokenMiddleware, token=token)

    @app.exception_handler(NocodetuneError)
    async def _user_error(_: Request, exc: NocodetuneError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=exc.to_dict())

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        return JSONResponse(status_code=exc.status_code, content={"error": "HTTPError", "message": message}, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p not in ("body", "query", "path")), "message": e.get("msg", "")} for e in exc.errors()
        ]
        first = details[0] if details else {"field": None, "message": "invalid request"}
        return JSONResponse(
            status_code=422,
            content={"error": "ValidationError", "message": f"{first['field']}: {first['message']}", "field": first["field"], "details": details},
        )

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, object]:
        return {"status": "ok", "version": __version__, "workspace": str(ws.root), "routes": list(routes)}

    if "files" in routes:
        app.include_router(files_routes.router, prefix="/api/files", tags=["files"])
    if "jobs" in routes:
        app.include_router(jobs_routes.router, prefix="/api", tags=["jobs"])
        app.include_router(export_routes.router, prefix="/api", tags=["exports"])
    if "servers" in routes:
        app.include_router(servers_routes.router, prefix="/api/servers", tags=["servers"])
    if "ui" in routes:
        from nocodetune.ui import routes as ui_routes

        ui_routes.mount(app)
    return app


def serve_api(
    ws: Workspace,
    host: str = "127.0.0.1",
    port: int = 8000,
    routes: Iterable[str] = ROUTE_GROUPS["api"],
    *,
    api_token: str | None = None,
    log_level: str = "info",
) -> None:
    """Run the API with uvicorn until interrupted; refuses a non-loopback host without a token."""
    import uvicorn

    token = api_token if api_token is not None else get_settings().api_token
    require_token_for(host, token)
    ws.require()
    app = create_app(ws, routes, api_token=token)
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False)
