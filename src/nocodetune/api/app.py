"""Builds the FastAPI application; `routes` picks which servers it plays.

`api` = everything plus the web UI; `data` = the seed's data load server (files routes);
`jobs` = the seed's fine-tuning server (jobs routes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from nocodetune import __version__
from nocodetune.errors import NocodetuneError
from nocodetune.workspace import Workspace

ROUTE_GROUPS = {
    "api": ("files", "jobs", "servers", "ui"),
    "data": ("files",),
    "jobs": ("jobs",),
}


def create_app(workspace: Workspace | Path | str, routes: Iterable[str] = ROUTE_GROUPS["api"]) -> FastAPI:
    from nocodetune.api import files_routes, jobs_routes, servers_routes

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    routes = tuple(routes)
    app = FastAPI(title="NoCodeTune", version=__version__, description="Fine-tune language models without writing code.")
    app.state.workspace = ws
    app.state.routes = routes

    @app.exception_handler(NocodetuneError)
    async def _user_error(_: Request, exc: NocodetuneError) -> JSONResponse:
        return JSONResponse(status_code=exc.status_code, content=exc.to_dict())

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"), "message": e.get("msg", "")} for e in exc.errors()
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
    if "servers" in routes:
        app.include_router(servers_routes.router, prefix="/api/servers", tags=["servers"])
    if "ui" in routes:
        from nocodetune.ui import routes as ui_routes

        ui_routes.mount(app)
    return app
