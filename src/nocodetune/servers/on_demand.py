"""Model servers started on first use and stopped when idle, for the API's `/v1` chat routes.

The API answers `POST /v1/chat/completions` for a fine-tuned model by relaying the request
to a model server of that job. This pool finds one already running (started by `server
start model`, say) or starts one through the server manager (`manager.start(...,
background=True)`, the same path as the CLI), so it shows in `server list` like any
other. A server the pool started stops after `idle_s` without requests, and when the pool
closes; servers it found running are used and left alone.

Starting a model takes seconds to minutes; one start per model runs in the background and
requests wait up to `start_wait_s` for it, then get `ServerStarting` (the API answers 503
with Retry-After, which the OpenAI SDK retries).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from nocodetune.errors import NocodetuneError
from nocodetune.records.servers import ServerRecord
from nocodetune.servers import manager, process
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace

log = logging.getLogger(__name__)

Key = tuple[str, str]  # ("job", name) or ("model", source)


class ServerStarting(NocodetuneError):
    """The model server is still loading; ask again in `retry_after` seconds."""

    status_code = 503

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message, hint=f"retry in {retry_after} s")
        self.retry_after = retry_after


class ServerFailed(NocodetuneError):
    """The model server could not start (a broken model, not a busy one)."""

    status_code = 500


@dataclass
class Lease:
    key: Key
    url: str
    served_name: str


@dataclass
class _Entry:
    record: ServerRecord | None = None
    served_name: str | None = None
    owned: bool = False
    starting: Future[tuple[ServerRecord, bool, str]] | None = None
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)


class ModelServerPool:
    """One model server per job (or base model) for as long as it is used."""

    def __init__(
        self,
        ws: Workspace,
        *,
        idle_s: float,
        start_wait_s: float = 300.0,
        start: Callable[..., ServerRecord] = manager.start,
    ) -> None:
        self.ws = ws
        self.idle_s = idle_s
        self.start_wait_s = start_wait_s
        self._start = start
        self._entries: dict[Key, _Entry] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, name="model-server-reaper", daemon=True)
        self._reaper.start()

    # -- use ----------------------------------------------------------------------------------
    def acquire(self, key: Key) -> Lease:
        """A running server for `key` (starting one if needed); `release` it when the request is done."""
        with self._lock:
            if self._closed.is_set():
                raise ServerStarting("the API is shutting down", retry_after=5)
            entry = self._entries.setdefault(key, _Entry())
            if entry.record is not None and not process.is_alive(entry.record.pid, entry.record.pid_create_time):
                entry.record, entry.served_name = None, None  # it died: start another
            if entry.record is None and entry.starting is None:  # one start per model, whoever asks
                entry.starting = Future()
                threading.Thread(target=self._run_start, args=(key, entry.starting), name=f"model-server-start-{key[1]}", daemon=True).start()
            starting = entry.starting
            if entry.record is not None:
                return self._lease(key, entry)
        assert starting is not None
        try:
            record, owned, name = starting.result(timeout=self.start_wait_s)
        except FutureTimeout:
            # ask again after about as long as this request waited (1-10 s): the SDK honours Retry-After
            raise ServerStarting(f"the model server for {key[1]} is still loading", retry_after=max(1, min(10, round(self.start_wait_s)))) from None
        except Exception as exc:  # noqa: BLE001 - any start failure is answered, and the next request tries again
            with self._lock:
                if self._entries.get(key) is entry and entry.starting is starting:
                    entry.starting = None
            if not isinstance(exc, NocodetuneError):
                log.error("starting the model server for %s failed", key[1], exc_info=exc)
            message = exc.message if isinstance(exc, NocodetuneError) else f"{type(exc).__name__}: {exc}"
            raise ServerFailed(
                f"the model server for {key[1]} did not start: {message}", file=getattr(exc, "file", None), hint=getattr(exc, "hint", None)
            ) from None
        with self._lock:
            if entry.starting is starting:
                entry.record, entry.owned, entry.served_name, entry.starting = record, owned, name, None
            if entry.record is None:
                raise ServerStarting(f"the model server for {key[1]} is restarting", retry_after=2)
            return self._lease(key, entry)

    def _lease(self, key: Key, entry: _Entry) -> Lease:
        assert entry.record is not None and entry.served_name is not None
        entry.in_flight += 1
        entry.last_used = time.monotonic()
        return Lease(key=key, url=entry.record.url, served_name=entry.served_name)

    def release(self, lease: Lease) -> None:
        with self._lock:
            entry = self._entries.get(lease.key)
            if entry is not None:
                entry.in_flight = max(0, entry.in_flight - 1)
                entry.last_used = time.monotonic()

    def forget(self, lease: Lease) -> None:
        """The server stopped answering: the next request starts (or finds) another."""
        with self._lock:
            entry = self._entries.get(lease.key)
            if entry is not None and entry.record is not None and entry.record.url == lease.url:
                entry.record, entry.served_name = None, None

    def _run_start(self, key: Key, future: Future[tuple[ServerRecord, bool, str]]) -> None:
        """In a daemon thread, so a start in progress never holds up the API's exit."""
        try:
            result = self._find_or_start(key)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
            future.set_exception(exc)
            return
        if self._closed.is_set() and result[1]:
            _stop(self.ws, result[0])  # the pool closed while it loaded: nobody will use or stop it
            future.set_exception(ServerStarting("the API is shutting down", retry_after=5))
            return
        future.set_result(result)

    def _find_or_start(self, key: Key) -> tuple[ServerRecord, bool, str]:
        """(record, started here, the model id it answers to), in the starter thread."""
        kind, name = key
        for info in manager.list_servers(self.ws, check_health=False):
            if info.kind == "model" and ((kind == "job" and info.job == name) or (kind == "model" and info.job is None and info.model == name)):
                record = ServerRecord(**info.model_dump(include=set(ServerRecord.model_fields)))
                return record, False, served_name(record, key)
        log.info("starting a model server for %s %s", kind, name)
        record = self._start(self.ws, "model", job=name if kind == "job" else None, model=name if kind == "model" else None, background=True)
        return record, True, served_name(record, key)

    # -- idle stop ----------------------------------------------------------------------------
    def _reap_loop(self) -> None:
        every = max(0.2, min(self.idle_s / 4, 30.0))
        while not self._closed.wait(every):
            try:
                self.reap()
            except Exception:  # noqa: BLE001 - the reaper must outlive one bad stop
                log.exception("stopping an idle model server failed")

    def reap(self) -> list[str]:
        """Stop the servers this pool started that have been idle for `idle_s`; return their ids."""
        now = time.monotonic()
        with self._lock:
            idle = [
                (key, entry.record) for key, entry in self._entries.items()
                if entry.owned and entry.record is not None and entry.in_flight == 0 and now - entry.last_used >= self.idle_s
            ]  # fmt: skip
            for key, _ in idle:
                del self._entries[key]
        stopped = []
        for key, record in idle:
            assert record is not None
            log.info("stopping idle model server %s (%s %s)", record.id, *key)
            _stop(self.ws, record)
            stopped.append(record.id)
        return stopped

    def close(self) -> None:
        """Stop the servers this pool started (found ones keep running)."""
        self._closed.set()
        with self._lock:
            owned = [e.record for e in self._entries.values() if e.owned and e.record is not None]
            self._entries.clear()
        for record in owned:
            _stop(self.ws, record)

    def running(self) -> dict[Key, str]:
        """key → server id of the servers known to the pool (for tests and diagnostics)."""
        with self._lock:
            return {key: e.record.id for key, e in self._entries.items() if e.record is not None}


def _stop(ws: Workspace, record: ServerRecord) -> None:
    try:
        manager.stop(ws, record.id)
    except NocodetuneError:
        pass  # already gone


def served_name(record: ServerRecord, key: Key) -> str:
    """The model id the server answers to: what its /v1/models says (the job name unless started with --name)."""
    import httpx

    token = get_settings().api_token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        listing = httpx.get(f"{record.url}/v1/models", headers=headers, timeout=10).json()
        return str(listing["data"][0]["id"])
    except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError):
        return key[1] if key[0] == "job" else record.model or key[1]
