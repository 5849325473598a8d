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
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse

from nocodetune import __version__
from nocodetune.api.auth import BearerTokenMiddleware, guard_refusal, require_token_for
from nocodetune.api.errors import APP_ERRORS, install_error_handlers, openai_shape, register_error_shape
from nocodetune.http_guard import BrowserGuardMiddleware
from nocodetune.jobs.preflight import validator
from nocodetune.errors import NocodetuneError
from nocodetune.jobs.bootstrap import InitResult
from nocodetune.jobs.service import JobService
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace

ROUTE_GROUPS = {
    "api": ("files", "jobs", "servers", "models", "ui"),
    "data": ("files",),
    "jobs": ("jobs",),
}


def create_app(
    workspace: Workspace | Path | str,
    routes: Iterable[str] = ROUTE_GROUPS["api"],
    *,
    job_service: JobService | None = None,
    api_token: str | None = None,
    allowed_hosts: Iterable[str] | None = None,
) -> FastAPI:
    """The app for `workspace`. `job_service` replaces the default one (tests inject a fake trainer).

    `allowed_hosts`: names besides loopback and the bound address that clients may use
    (default NOCODETUNE_ALLOWED_HOSTS); see `nocodetune.http_guard`.
    """
    from nocodetune.api import export_routes, files_routes, jobs_routes, models_routes, servers_routes

    ws = workspace if isinstance(workspace, Workspace) else Workspace(workspace)
    routes = tuple(routes)
    token = api_token if api_token is not None else get_settings().api_token
    service = job_service or (JobService(ws) if "jobs" in routes else None)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        from nocodetune import db

        await run_in_threadpool(prepare_workspace, ws)
        await run_in_threadpool(db.init_db, ws)
        if service is not None:
            await run_in_threadpool(service.start)
            validator().start()  # warm up in the background: the first validation is then fast too
        try:
            yield
        finally:
            if service is not None:
                await run_in_threadpool(service.stop)

    app = FastAPI(
        title="NoCodeTune", version=__version__, description="Fine-tune language models without writing code.", lifespan=lifespan,
        docs_url=None, redoc_url=None,  # served below from local assets, never a CDN
        responses=APP_ERRORS,
    )  # fmt: skip
    app.state.workspace = ws
    app.state.routes = routes
    app.state.job_service = service
    if token:
        app.add_middleware(BearerTokenMiddleware, token=token)
    hosts = list(allowed_hosts) if allowed_hosts is not None else [h for h in get_settings().allowed_hosts.split(",") if h.strip()]
    app.add_middleware(BrowserGuardMiddleware, allowed_hosts=hosts, csrf=True, refuse=guard_refusal)
    install_error_handlers(app)  # last: its catcher wraps every other middleware
    _add_docs(app)

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
    if "models" in routes:
        app.include_router(models_routes.router, prefix="/api/models", tags=["models"])
    if "jobs" in routes:  # the OpenAI fine-tuning API (files, fine_tuning/jobs, models, chat) under /v1
        from nocodetune.api.openai import router as openai_router

        register_error_shape(app, "/v1", openai_shape)
        app.include_router(openai_router, prefix="/v1", tags=["openai"])
    if "ui" in routes:
        from nocodetune.ui import routes as ui_routes

        ui_routes.mount(app)
    return app


DOCS_ASSETS = "/docs-assets"


def docs_assets_dir() -> Path:
    """Swagger UI and ReDoc files from the installed `fastapi-offline` package (no CDN: /docs works offline)."""
    import importlib.util

    from nocodetune.errors import NotFoundError

    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("the fastapi-offline package (Swagger UI assets) is not installed", hint="pip install fastapi-offline")
    return Path(next(iter(spec.submodule_search_locations))) / "static"


def _add_docs(app: FastAPI) -> None:
    """/docs and /redoc with every asset served by this server (the seed's pages loaded a CDN)."""
    from fastapi.responses import FileResponse

    assets = {"swagger-ui-bundle.js": "application/javascript", "swagger-ui.css": "text/css", "redoc.standalone.js": "application/javascript", "favicon.png": "image/png"}

    @app.get(DOCS_ASSETS + "/{asset}", include_in_schema=False)
    def docs_asset(asset: str) -> FileResponse:
        from nocodetune.errors import NotFoundError

        if asset not in assets:
            raise NotFoundError(f"no documentation asset {asset!r}")
        return FileResponse(docs_assets_dir() / asset, media_type=assets[asset], headers={"Cache-Control": "max-age=86400"})

    @app.get("/docs", include_in_schema=False)
    def swagger(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - REST API", oauth2_redirect_url=f"{root}/docs/oauth2-redirect",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
        )  # fmt: skip

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - REST API", redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png", with_google_fonts=False,
        )  # fmt: skip


def prepare_workspace(ws: Workspace) -> InitResult | None:
    """Make a missing or empty folder a workspace, so the web UI works from the first start.

    A folder that holds other files is refused rather than filled with workspace folders:
    the user may have pointed at the wrong place. Returns what was created, None if the
    workspace was already there.
    """
    if ws.exists():
        ws.create_layout()  # folders a copy dropped because they were empty
        return None
    if ws.root.exists() and (not ws.root.is_dir() or any(ws.root.iterdir())):
        raise NocodetuneError(
            f"{ws.root} holds other files and is not a NoCodeTune workspace",
            file=str(ws.root),
            hint="start in an empty or new folder, or turn this one into a workspace with `nocodetune init`",
        )
    from nocodetune.jobs.bootstrap import init_workspace

    return init_workspace(ws.root)


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
    prepare_workspace(ws)
    app = create_app(ws, routes, api_token=token)
    uvicorn.run(app, host=host, port=port, log_level=log_level, proxy_headers=False)
