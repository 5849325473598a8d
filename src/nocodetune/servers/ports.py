"""Ports and hosts: pick a free port, check one, and tell loopback from the network."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time

_recent: dict[int, float] = {}  # ports handed out in this process, so two quick starts differ
_lock = threading.Lock()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS says is free now. Another process may take it before our server binds
    it; the manager retries on "address already in use"."""
    with _lock:
        now = time.monotonic()
        for port, at in list(_recent.items()):
            if now - at > 60:
                del _recent[port]
        for _ in range(50):
            with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
                s.bind((host, 0))
                port = int(s.getsockname()[1])
            if port not in _recent:
                _recent[port] = now
                return port
        raise OSError("no free port found")


def connect_host(host: str) -> str:
    """Where a local client reaches a server bound to `host` (0.0.0.0 → 127.0.0.1)."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "::1"
    return host


def url_for(host: str, port: int) -> str:
    h = connect_host(host)
    return f"http://[{h}]:{port}" if ":" in h else f"http://{h}:{port}"
