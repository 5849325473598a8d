"""Serve an ASGI app with uvicorn in a thread on a free 127.0.0.1 port, for one block."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from contextlib import contextmanager
from typing import Any, Iterator, TypeVar

from nocodetune.servers.ports import free_port

T = TypeVar("T")


@contextmanager
def serve_in_thread(app: Any, *, start_timeout: float = 30) -> Iterator[str]:
    """Yield the base URL while `app` serves; stop it when the block ends."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(15)


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(coro)` in a thread of its own.

    Playwright's sync API (the browser tests' session-wide browser) leaves an event loop
    marked running in the main thread, where `asyncio.run` then refuses to start.
    """
    result: list[T] = []
    error: list[BaseException] = []

    def main() -> None:
        try:
            result.append(asyncio.run(coro))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            error.append(exc)

    thread = threading.Thread(target=main, name="test-asyncio")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]
