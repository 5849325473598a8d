"""Browser attacks on a server that listens on this machine: DNS rebinding and CSRF.

Any web page the user opens can send requests to 127.0.0.1. Two rules stop it:

- **Host**: every request must name this server in its `Host` header: the address the
  connection arrived at (from the socket, never from a header), a loopback name
  (`127.0.0.1`, `localhost`, `::1`) with the port it arrived on, or a name the operator
  configured (NOCODETUNE_ALLOWED_HOSTS, for a reverse proxy). A rebinding page's
  requests carry the attacker's domain name, so they are refused.
- **Origin and CSRF token** on every state-changing request (anything but GET, HEAD,
  OPTIONS): an `Origin` header must be this server's own origin (`null` is refused), a
  `Sec-Fetch-Site: cross-site` is refused, and, where the app issues one, a request that
  looks like a browser's (it carries Origin or Sec-Fetch-* headers) must echo the CSRF cookie in
  the `X-CSRF-Token` header. The cookie (SameSite=Strict, not HttpOnly so the UI's
  script can read it) is set on every HTML page. Requests with `Authorization: Bearer`
  are exempt from the token (a page cannot make a browser add that header), and clients
  that are not browsers (curl, SDKs) send none of these headers and pass.

A foundation module (pure ASGI, no NoCodeTune imports) so that both the REST API and the
model server can use it; each passes its own `refuse` renderer for its error shape.
"""

from __future__ import annotations

import ipaddress
import json
import re
import secrets
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSRF_COOKIE = "nocodetune_csrf"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,128}$")

# (scope, status, message, hint) -> raw ASGI response parts (status, headers, body)
Refuse = Callable[[Scope, int, str, str], tuple[int, list[tuple[bytes, bytes]], bytes]]


def project_refusal(scope: Scope, status: int, message: str, hint: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The project's error shape (what /api answers)."""
    body = json.dumps({"error": "Forbidden", "message": message, "hint": hint}).encode()
    return status, [(b"content-type", b"application/json"), (b"x-should-retry", b"false")], body


def _normalize(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def split_host(value: str, default_port: int | None) -> tuple[str, int | None] | None:
    """`host[:port]` from a Host header or an allowed-hosts entry; None when malformed."""
    value = value.strip()
    if not value or any(c in value for c in "/\\@ \t"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else ""
    elif value.count(":") > 1:
        host, port_text = value, ""  # a bare IPv6 address
    else:
        host, _, port_text = value.partition(":")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            return None
        return _normalize(host), int(port_text)
    return _normalize(host), default_port


class BrowserGuardMiddleware:
    """403 for requests whose Host, Origin or CSRF token says they come from another site.

    `allowed_hosts`: extra names (optionally `name:port`) the server is reached by, e.g.
    behind a reverse proxy. `csrf`: issue the CSRF cookie on HTML pages and require it on
    browser requests that change state (the API with its UI); a server without pages (the
    model server) passes False and keeps the Host and Origin checks.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str] = (), csrf: bool = True, refuse: Refuse = project_refusal) -> None:
        self.app = app
        self.extra: list[tuple[str, int | None]] = [h for h in (split_host(x, None) for x in allowed_hosts if x.strip()) if h]
        self.csrf = csrf
        self.refuse = refuse

    # -- the checks ---------------------------------------------------------------------
    def _names_this_server(self, scope: Scope, host: str, port: int | None) -> bool:
        server = scope.get("server")
        if server is None:
            return True  # no socket (an in-process call): nothing to compare with
        server_host, server_port = _normalize(str(server[0])), server[1]
        for name, allowed_port in self.extra:
            if host == name and (allowed_port is None or allowed_port == port):
                return True
        if server_port is not None and port != server_port:
            return False
        return host == server_host or host in LOOPBACK_NAMES

    def _default_port(self, scope: Scope) -> int:
        return 443 if scope.get("scheme") in ("https", "wss") else 80

    def check(self, scope: Scope, headers: dict[str, str]) -> tuple[str, str] | None:
        """(message, hint) when the request is refused; None when it may go on."""
        raw_host = headers.get("host")
        if raw_host is not None:
            parsed = split_host(raw_host, self._default_port(scope))
            if parsed is None or not self._names_this_server(scope, *parsed):
                return (
                    f"request refused: Host {raw_host[:100]!r} does not name this server",
                    "open it as http://127.0.0.1:<port> (or localhost); behind a proxy, list its name in NOCODETUNE_ALLOWED_HOSTS",
                )
        if scope.get("method", "GET") in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None:
            parts = urlsplit(origin) if origin != "null" else None
            ok = False
            if parts is not None and parts.scheme in ("http", "https") and parts.hostname:
                try:
                    port = parts.port or (443 if parts.scheme == "https" else 80)
                    ok = self._names_this_server(scope, _normalize(parts.hostname), port)
                except ValueError:
                    ok = False
            if not ok:
                return (f"request refused: it comes from another site (Origin {origin[:100]!r})", "state-changing requests are accepted from this server's own pages and from non-browser clients only")
        if headers.get("sec-fetch-site") == "cross-site":
            return ("request refused: the browser says it comes from another site", "state-changing requests are accepted from this server's own pages only")
        if self.csrf and self._from_browser(headers) and not headers.get("authorization", "").lower().startswith("bearer "):
            expected = self._cookie(headers)
            given = headers.get(CSRF_HEADER, "")
            if not expected or not given or not secrets.compare_digest(expected, given):
                return (
                    "request refused: missing or wrong CSRF token",
                    f"the web UI sends it by itself (reload the page); a script sends the {CSRF_COOKIE} cookie's value in the X-CSRF-Token header, or uses an API token",
                )
        return None

    @staticmethod
    def _from_browser(headers: dict[str, str]) -> bool:
        return "origin" in headers or any(k.startswith("sec-fetch-") for k in headers)

    @staticmethod
    def _cookie(headers: dict[str, str]) -> str | None:
        raw = headers.get("cookie")
        if not raw:
            return None
        jar: SimpleCookie = SimpleCookie()
        try:
            jar.load(raw)
        except Exception:  # noqa: BLE001 - a malformed Cookie header is just no token
            return None
        morsel = jar.get(CSRF_COOKIE)
        return morsel.value if morsel is not None and _TOKEN_RE.match(morsel.value) else None

    # -- ASGI ---------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for key, value in scope.get("headers", []):
            name = key.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[name] = f"{headers[name]}; {text}" if name == "cookie" and name in headers else headers.get(name, text)
        refused = self.check(scope, headers)
        if refused is not None:
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            status, response_headers, body = self.refuse(scope, 403, *refused)
            await send({"type": "http.response.start", "status": status, "headers": [*response_headers, (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        if not self.csrf or self._cookie(headers) is not None:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if content_type.startswith(b"text/html"):
                    cookie = f"{CSRF_COOKIE}={secrets.token_urlsafe(32)}; Path=/; SameSite=Strict"
                    message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)
