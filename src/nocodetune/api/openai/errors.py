"""OpenAI's error object for every answer under `/v1` on the API server.

`render_error` is the one function that turns whatever a `/v1` route raises into
`{"error": {"message", "type", "param", "code"}}` with OpenAI's status and the retry
headers the OpenAI SDK obeys: a refusal that will not change on retry carries
`x-should-retry: false` (the SDK would otherwise retry 409s and 5xx), a busy or loading
server answers 503/429 with `Retry-After`.

Until the app's exception handlers choose the error shape by path prefix in one place
(docs/DECISIONS.md "Error shape by prefix"), `OpenAIRoute` applies `render_error` to this
package's routes; `render_error` moves there unchanged.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from nocodetune.api.errors import openai_error_responses
from nocodetune.errors import ConflictError, NocodetuneError, NotFoundError
from nocodetune.jobs.openai_jobs import RefusedRequest, openai_param
from nocodetune.servers.on_demand import ServerFailed, ServerStarting

log = logging.getLogger(__name__)
_TYPE_TAG = re.compile(r"^(literal\[.*\]|function-\w+\[.*\]|int|float|str|bool|none|dict\[.*\]|list\[.*\])$")


class OpenAIError(Exception):
    """An error answered exactly as given."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code, self.retry_after = status, message, type, param, code, retry_after


def _retryable(status: int) -> bool:
    """What the OpenAI SDK may retry: timeouts, lock conflicts, rate limits and server errors."""
    return status in (408, 409, 429) or status >= 500


def error_response(error: OpenAIError, *, permanent: bool | None = None) -> JSONResponse:
    """OpenAI's error object; `permanent` (default: not a retryable status) adds `x-should-retry: false`."""
    status = error.status
    kind = error.type or ("server_error" if status >= 500 else "rate_limit_error" if status == 429 else "invalid_request_error")
    headers: dict[str, str] = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    if permanent if permanent is not None else not _retryable(status):
        headers["x-should-retry"] = "false"
    body = {"error": {"message": error.message, "type": kind, "param": error.param, "code": error.code}}
    return JSONResponse(status_code=status, content=body, headers=headers)


def render_error(exc: Exception) -> JSONResponse:
    """Any exception raised under /v1, as OpenAI would answer it."""
    if isinstance(exc, OpenAIError):
        return error_response(exc)
    if isinstance(exc, RequestValidationError):
        return error_response(_invalid_request(exc))
    if isinstance(exc, ServerStarting):
        return error_response(OpenAIError(503, exc.message, code="model_loading", retry_after=exc.retry_after))
    if isinstance(exc, ServerFailed):
        return error_response(OpenAIError(500, _message(exc), code="model_server_failed"), permanent=True)
    if isinstance(exc, NocodetuneError):
        param = openai_param(exc.field)
        message = _message(exc)
        if isinstance(exc, RefusedRequest):
            return error_response(OpenAIError(400, message, param=param, code=exc.code))
        if isinstance(exc, NotFoundError):
            return error_response(OpenAIError(404, message, param=param, code="model_not_found" if param == "model" else "not_found"))
        if isinstance(exc, ConflictError):
            return error_response(OpenAIError(409, message, param=param, code="conflict", retry_after=2))  # a busy lock: worth a retry
        status = exc.status_code if exc.status_code in (400, 401, 403, 413) else 400  # 422 is OpenAI's 400
        return error_response(OpenAIError(status, message, param=param, code="invalid_value" if status == 400 else None))
    if isinstance(exc, StarletteHTTPException):
        return error_response(OpenAIError(exc.status_code, str(exc.detail)))
    log.error("unexpected error under /v1", exc_info=exc)
    return error_response(OpenAIError(500, f"internal error ({type(exc).__name__}); see the API server's log"))


def _message(exc: NocodetuneError) -> str:
    """The message with the file, row and hint it names (the field travels as `param`)."""
    text = exc.message
    where = []
    if exc.file and exc.file not in text:
        where.append(f"file {exc.file}")
    if exc.row is not None and f"row {exc.row}" not in text:
        where.append(f"row {exc.row}")
    if where:
        text += f" ({', '.join(where)})"
    if exc.hint:
        text += f". Hint: {exc.hint}"
    return text.replace("\n", " ")


def _invalid_request(exc: RequestValidationError) -> OpenAIError:
    errors = exc.errors()
    first = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    # a union's member type ("int", "literal['auto']") is part of pydantic's location, not the user's field
    loc = [p for p in loc if not _TYPE_TAG.match(p)]
    param = ".".join(loc) or None
    kind = first.get("type", "")
    if kind == "json_invalid":
        return OpenAIError(400, "the request body is not valid JSON", code="invalid_json")
    if kind == "extra_forbidden":
        return OpenAIError(400, f"unknown parameter {param!r}: it is not part of this request, and NoCodeTune does not ignore fields", param=param, code="unknown_parameter")
    if kind == "missing":
        return OpenAIError(400, f"missing required parameter {param!r}", param=param, code="missing_required_parameter")
    message = str(first.get("msg", "invalid value")).removeprefix("Value error, ")
    return OpenAIError(400, message if param and param.split(".")[-1] in message else f"{param or 'body'}: {message}", param=param, code="invalid_value")


class OpenAIRoute(APIRoute):
    """A route whose every error (body parsing and dependencies included) is answered by `render_error`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except Exception as exc:  # noqa: BLE001 - every error gets OpenAI's shape
                return render_error(exc)

        return answer


# Every status a /v1 route may answer, declared in OpenAPI in OpenAI's shape.
V1_ERRORS = openai_error_responses(400, 401, 403, 404, 405, 409, 413, 429, 500, 503)
