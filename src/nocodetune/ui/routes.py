"""The no-code web UI: page shells, its own static files, Plotly, and a chat proxy.

Pages are thin Jinja2 shells; the scripts in `static/` fill them from the public REST
API (`/api/...`) only, so anything the UI does a script can do too. The one server-side
helper is the playground proxy, which keeps the browser on one origin: it forwards a
chat request to a model server found through `GET /api/servers/{id}`, loopback only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask

from nocodetune import __version__
from nocodetune.errors import NocodetuneError, NotFoundError, UnsafeNameError
from nocodetune.workspace import check_name

_HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(_HERE / "templates"))

# (path, template, nav key, title) of every page; the scripts do the rest.
PAGES: tuple[tuple[str, str, str, str], ...] = (
    ("/ui/datasets", "datasets.html", "datasets", "Datasets"),
    ("/ui/jobs", "jobs.html", "jobs", "Jobs"),
    ("/ui/jobs/new", "job_new.html", "new", "New job"),
    ("/ui/servers", "servers.html", "servers", "Servers"),
    ("/ui/playground", "playground.html", "playground", "Playground"),
    ("/ui/models", "models.html", "models", "Models"),
    ("/ui/compare", "compare.html", "jobs", "Compare runs"),
)
# Model-server endpoints the playground may reach through the proxy.
PROXY_PATHS = frozenset({"chat/completions", "completions", "models"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "0.0.0.0", "::"})

router = APIRouter(include_in_schema=False)


def _page(request: Request, template: str, nav: str, title: str, **extra: Any) -> Response:
    context = {"nav": nav, "title": title, "version": __version__, **extra}
    return templates.TemplateResponse(request, template, context)


def _add_page(path: str, template: str, nav: str, title: str) -> None:
    def handler(request: Request) -> Response:
        return _page(request, template, nav, title)

    handler.__name__ = f"page_{nav}"
    router.add_api_route(path, handler, methods=["GET"], response_class=Response)


for _path, _template, _nav, _title in PAGES:
    _add_page(_path, _template, _nav, _title)


@router.get("/")
@router.get("/ui")
@router.get("/ui/")
def home() -> RedirectResponse:
    """Jobs are what a returning user wants first; the empty state points to datasets."""
    return RedirectResponse("/ui/jobs", status_code=307)


@router.get("/ui/jobs/{name}")
def job_page(request: Request, name: str) -> Response:
    check_name(name, "job name")  # the name is echoed into the page; refuse odd ones early
    return _page(request, "job_detail.html", "jobs", f"Job {name}", job_name=name)


def plotly_js_path() -> Path:
    """plotly.min.js from the installed `plotly` wheel, found without importing plotly."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise NotFoundError("the plotly package is not installed", hint="pip install plotly")
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise NotFoundError(f"plotly.min.js is missing from the plotly package at {path}", file=str(path))
    return path


@router.get("/ui/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(plotly_js_path(), media_type="application/javascript", headers={"Cache-Control": "max-age=86400"})


class ProxyAuthError(NocodetuneError):
    """The proxy is as protected as /api: no token, no chat."""

    status_code = 401


async def _server_record(request: Request, server_id: str) -> dict[str, Any]:
    """Ask our own public API for the server, so the UI depends on REST only."""
    headers = {k: v for k, v in request.headers.items() if k.lower() == "authorization"}
    transport = httpx.ASGITransport(app=request.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ui.internal", headers=headers) as client:
        resp = await client.get(f"/api/servers/{server_id}")
    if resp.status_code == 404:
        raise NotFoundError(f"no server with id {server_id!r}", field="server")
    if resp.status_code in (401, 403):
        raise ProxyAuthError("missing or wrong API token", field="Authorization", hint="send the same 'Authorization: Bearer <token>' as for /api")
    if resp.status_code != 200:
        raise NocodetuneError(f"could not look up server {server_id!r}: HTTP {resp.status_code}", field="server")
    data = resp.json()
    return data.get("server", data) if isinstance(data, dict) else {}


def server_base_url(record: dict[str, Any]) -> str:
    """The server's loopback base URL; anything that is not this machine is refused."""
    url = record.get("url")
    if not url:
        host, port = record.get("host") or "127.0.0.1", record.get("port")
        if not port:
            raise NocodetuneError("the server has no port yet; is it still starting?", field="server", hint="wait for it to be healthy")
        url = f"http://{host}:{port}"
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    if parts.scheme not in {"http", "https"} or host not in LOOPBACK_HOSTS:
        raise UnsafeNameError(f"the playground proxy only reaches servers on this machine, not {url}", field="server")
    if host in {"0.0.0.0", "::", "localhost"}:
        host = "127.0.0.1"  # a wildcard bind is reachable on loopback
    return f"{parts.scheme}://{host}:{parts.port or 80}{parts.path.rstrip('/')}".removesuffix("/v1")


@router.api_route("/ui/proxy/{server_id}/v1/{path:path}", methods=["GET", "POST"])
async def proxy(request: Request, server_id: str, path: str) -> Response:
    """Forward a chat request to a model server and stream its answer back unchanged."""
    check_name(server_id, "server")
    if path not in PROXY_PATHS:
        raise NotFoundError(f"the playground proxy does not forward /v1/{path}", field="path")
    base = server_base_url(await _server_record(request, server_id))
    client = httpx.AsyncClient(timeout=httpx.Timeout(600.0, connect=10.0))
    upstream = client.build_request(
        request.method,
        f"{base}/v1/{path}",
        content=await request.body(),
        headers={"content-type": request.headers.get("content-type", "application/json")},
    )
    try:
        resp = await client.send(upstream, stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        return JSONResponse(
            status_code=502,
            content={"error": "ProxyError", "message": f"model server {server_id} is not answering: {exc}", "field": "server", "hint": "check it on the Servers page"},
        )

    async def close() -> None:
        await resp.aclose()
        await client.aclose()

    return StreamingResponse(
        resp.aiter_bytes(),  # decoded, since content-encoding is not forwarded
        status_code=resp.status_code,
        media_type=resp.headers.get("content-type", "application/json"),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(close),
    )


def mount(app: FastAPI) -> None:
    """Add the UI pages, static files and proxy to the API app."""
    app.mount("/ui/static", StaticFiles(directory=str(_HERE / "static")), name="ui-static")
    app.include_router(router)
