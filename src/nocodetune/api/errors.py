"""Every error an app answers, in the shape its URL prefix promises.

`/api/...` (and everything else the app serves) answers the project's shape
`{"error", "message", "field"?, "file"?, "row"?, "hint"?, "details"?}`; a prefix can
register another shape (the OpenAI-compatible `/v1` answers `{"error": {"message",
"type", "param", "code"}}`). The choice is made here, once, for every kind of failure:
a `NocodetuneError`, an HTTP error (404 route, 405 method), a request that does not
validate, and an unexpected exception (500, traceback logged, never sent).

To give a prefix its own shape:

    from nocodetune.api.errors import openai_shape, register_error_shape
    register_error_shape(app, "/v1", openai_shape)
    app.include_router(v1_router, prefix="/v1")
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pydantic import BaseModel, Field

from nocodetune.errors import NocodetuneError

log = logging.getLogger("nocodetune.api")


@dataclass
class ApiError:
    """One failure, before it is given a shape."""

    status: int
    error: str  # the project's error name (NocodetuneError subclass, HTTPError, ...)
    message: str
    field: str | None = None
    file: str | None = None
    row: int | None = None
    hint: str | None = None
    details: list[dict[str, Any]] | None = None
    headers: dict[str, str] = dc_field(default_factory=dict)


Shape = Callable[[ApiError], dict[str, Any]]


class ErrorBody(BaseModel):
    """The project's error shape, as the OpenAPI document declares it."""

    error: str = Field(description="Error class, e.g. ConfigError, NotFoundError, ValidationError, Forbidden, InternalError.")
    message: str
    field: str | None = Field(None, description="The request field or config key concerned.")
    file: str | None = Field(None, description="The file concerned (workspace-relative where possible).")
    row: int | None = Field(None, description="The data row concerned.")
    hint: str | None = Field(None, description="What to do about it.")
    details: list[dict[str, Any]] | None = Field(None, description="Every validation error, for requests that do not validate.")


_DESCRIPTIONS = {
    400: "Bad request: an invalid name, path or value (the message names it)",
    401: "Missing or wrong API token (only when NOCODETUNE_API_TOKEN is set)",
    403: "Refused: a foreign Host, a cross-site Origin or a missing CSRF token",
    404: "No such dataset, version, job, base, server or file",
    405: "Method not allowed (the Allow header lists the methods)",
    409: "Conflicts with the current state (running, in use, exists)",
    413: "Upload larger than NOCODETUNE_MAX_UPLOAD_MB",
    422: "The request or the config does not validate",
    500: "A bug in NoCodeTune (the server log has the traceback)",
    503: "The registry was damaged and has just been rebuilt: retry",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries in the project's error shape, for FastAPI routes and routers."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error object, as the /v1 routes answer it."""

    error: OpenAIErrorDetail


def openai_error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entries in OpenAI's error shape, for the /v1 routes."""
    return {code: {"model": OpenAIErrorBody, "description": _DESCRIPTIONS.get(code, "OpenAI-shaped error")} for code in codes}


APP_ERRORS = error_responses(403, 500)  # any route: the browser guard and bugs
API_ERRORS = error_responses(400, 401, 404, 405, 422, 503)  # any /api route


def project_shape(err: ApiError) -> dict[str, Any]:
    """The project's error body (docs/DEVELOPING.md, REST API)."""
    out: dict[str, Any] = {"error": err.error, "message": err.message}
    for key in ("field", "file", "row", "hint", "details"):
        value = getattr(err, key)
        if value is not None:
            out[key] = value
    return out


_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error", 409: "conflict_error", 422: "invalid_request_error", 429: "rate_limit_error"}


_OPENAI_CODES = {401: "invalid_api_key", 403: "forbidden", 404: "not_found", 405: "method_not_allowed", 429: "rate_limit_exceeded"}


def openai_shape(err: ApiError) -> dict[str, Any]:
    """OpenAI's error object, for routes that mimic its API."""
    kind = _OPENAI_TYPES.get(err.status, "server_error" if err.status >= 500 else "invalid_request_error")
    message = err.message if not err.hint else f"{err.message} ({err.hint})"
    code = _OPENAI_CODES.get(err.status) or re.sub(r"(?<!^)(?=[A-Z])", "_", err.error).lower()
    return {"error": {"message": message, "type": kind, "param": err.field, "code": code}}


def register_error_shape(app: FastAPI, prefix: str, shape: Shape) -> None:
    """Answer errors of paths under `prefix` (e.g. "/v1") with `shape`; the longest prefix wins."""
    shapes: list[tuple[str, Shape]] = app.state.error_shapes
    shapes[:] = [s for s in shapes if s[0] != prefix.rstrip("/")] + [(prefix.rstrip("/"), shape)]
    shapes.sort(key=lambda s: len(s[0]), reverse=True)


def shape_for(scope: Scope) -> Shape:
    app = scope.get("app")
    path = scope.get("path", "")
    for prefix, shape in getattr(getattr(app, "state", None), "error_shapes", []):
        if path == prefix or path.startswith(prefix + "/"):
            return shape
    return project_shape


def error_response(scope: Scope, err: ApiError) -> JSONResponse:
    """The JSON response for `err` in the shape of the request's prefix."""
    headers = dict(err.headers)
    if 400 <= err.status < 500 and err.status not in (401, 408, 409, 429):
        headers.setdefault("x-should-retry", "false")  # retrying the same request gives the same answer
    return JSONResponse(status_code=err.status, content=shape_for(scope)(err), headers=headers)


def from_nocodetune(exc: NocodetuneError) -> ApiError:
    return ApiError(exc.status_code, type(exc).__name__, exc.message, exc.field, exc.file, exc.row, exc.hint)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """Every method some route accepts at this path (a 405's `Allow`), asked of the router itself."""
    routes = getattr(getattr(app, "router", None), "routes", [])
    allowed = []
    for method in _METHODS:
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in routes):
            allowed.append(method)
    return allowed


def _field_of(loc: Any) -> str:
    return ".".join(str(p) for p in loc if p not in ("body", "query", "path", "header", "cookie"))


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers and the last-resort 500 catcher on `app`."""
    app.state.error_shapes = []

    @app.exception_handler(NocodetuneError)
    async def _user_error(request: Request, exc: NocodetuneError) -> Response:
        return error_response(request.scope, from_nocodetune(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 404 and message == "Not Found":
            message = f"no route {request.method} {request.url.path}"
        if exc.status_code == 405:
            allow = allowed_methods(request.app, request.scope)
            headers["Allow"] = ", ".join(allow)
            message = f"{request.method} is not allowed on {request.url.path}; use {', '.join(allow) or 'another path'}"
        return error_response(request.scope, ApiError(exc.status_code, "HTTPError", message, headers=headers))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        details = [{"field": _field_of(e.get("loc", ())), "message": e.get("msg", "")} for e in exc.errors()]
        first = details[0] if details else {"field": None, "message": "invalid request"}
        message = f"{first['field']}: {first['message']}" if first["field"] else str(first["message"])
        return error_response(request.scope, ApiError(422, "ValidationError", message, field=first["field"] or None, details=details))

    app.add_middleware(UnexpectedErrorMiddleware)


class UnexpectedErrorMiddleware:
    """A bug becomes a logged traceback and a 500 in the prefix's shape, never a plain-text page.

    Pure ASGI (not BaseHTTPMiddleware) so it also sees exceptions raised before the
    response starts in streaming handlers. Once a response has started nothing can be
    sent instead; the exception is then logged and the connection closed by the server.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the one place that turns a bug into an answer
            ref = uuid.uuid4().hex[:12]
            log.error("unexpected error %s in %s %r", ref, scope.get("method"), scope.get("path"), exc_info=exc)
            if started:
                raise
            err = ApiError(
                500, "InternalError", f"unexpected error ({type(exc).__name__}) while answering {scope.get('method')} {scope.get('path')!r}",
                hint=f"this is a bug in NoCodeTune; the server log has the traceback under reference {ref}",
            )  # fmt: skip
            await error_response(scope, err)(scope, receive, send)
