"""Bearer-token access to `/api`, and the rule that a public bind needs a token.

With NOCODETUNE_API_TOKEN set, every `/api` request must carry `Authorization: Bearer
<token>`. Without one the API is only safe on loopback, so `serve_api` refuses any other
host: a training server on 0.0.0.0 without a token would let anyone run code-shaped
configs and read datasets.
"""

from __future__ import annotations

import hmac
import ipaddress

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from nocodetune.api.errors import ApiError, error_response
from nocodetune.errors import NocodetuneError

PROTECTED_PREFIXES = ("/api", "/v1")  # the token rule covers the OpenAI-compatible routes too (docs/DECISIONS.md)


def is_loopback(host: str) -> bool:
    if host in {"localhost", "ip6-localhost"}:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def require_token_for(host: str, token: str | None) -> None:
    """Refuse to serve on a non-loopback host without a token."""
    if not is_loopback(host) and not token:
        raise NocodetuneError(
            f"refusing to serve the API on {host} without a token",
            field="host",
            hint="set NOCODETUNE_API_TOKEN (clients then send 'Authorization: Bearer <token>'), or bind 127.0.0.1",
        )


def is_protected(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in PROTECTED_PREFIXES)


def guard_refusal(scope: Scope, status: int, message: str, hint: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """`http_guard` refusals in the shape of the request's prefix."""
    response = error_response(scope, ApiError(status, "Forbidden", message, hint=hint))
    return response.status_code, response.raw_headers, bytes(response.body)


class BearerTokenMiddleware(BaseHTTPMiddleware):
    """401 for `/api` and `/v1` requests that do not carry the configured token."""

    def __init__(self, app: object, token: str) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.token = token.encode()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if is_protected(request.url.path):
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
                err = ApiError(
                    401, "Unauthorized", "missing or wrong API token", field="Authorization",
                    hint="send 'Authorization: Bearer <NOCODETUNE_API_TOKEN>'", headers={"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
                return error_response(request.scope, err)
        return await call_next(request)
