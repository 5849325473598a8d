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
from starlette.responses import JSONResponse, Response

from nocodetune.errors import NocodetuneError

PROTECTED_PREFIX = "/api"


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


class BearerTokenMiddleware(BaseHTTPMiddleware):
    """401 for `/api` requests that do not carry the configured token."""

    def __init__(self, app: object, token: str) -> None:
        super().__init__(app)  # type: ignore[arg-type]
        self.token = token.encode()

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if request.url.path == PROTECTED_PREFIX or request.url.path.startswith(PROTECTED_PREFIX + "/"):
            scheme, _, given = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), self.token):
                return JSONResponse(
                    status_code=401,
                    content={"error": "Unauthorized", "message": "missing or wrong API token", "field": "Authorization", "hint": "send 'Authorization: Bearer <NOCODETUNE_API_TOKEN>'"},
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)
