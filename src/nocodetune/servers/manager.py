"""The AI server manager: start, list, inspect, tail and stop the servers of a workspace.

Kinds: `api` (REST + web UI), `data` (files routes: the seed's data load server), `jobs`
(jobs routes: the seed's fine-tuning server) and `model` (an OpenAI-compatible server for a
job's output or a local model). A background server is a detached process whose output
goes to `logs/<kind>/<timestamp>.log`; `start` returns once its /health answers, so a
caller can use the URL at once. Foreground servers run in the caller's process: the face
that calls `start` passes `run_foreground`, because only faces may import the API app.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from nocodetune.errors import ConfigError, ConflictError, NocodetuneError, NotFoundError
from nocodetune.processes import create_time
from nocodetune.records import servers as server_records
from nocodetune.servers import process
from nocodetune.servers.ports import free_port, is_loopback, port_is_free, url_for
from nocodetune.records.servers import SERVER_KINDS, ServerKind, ServerRecord
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace, resolve_within

log = logging.getLogger(__name__)
STARTUP_TIMEOUT_S = {"api": 90.0, "data": 90.0, "jobs": 90.0, "model": 900.0}  # a model may convert a GGUF first
_PORT_RETRIES = 3
_ROUTES = {"api": "files, jobs, servers routes and the web UI", "data": "dataset files routes", "jobs": "jobs routes"}


def _save(ws: Workspace, record: ServerRecord) -> None:
    """Write the record (the truth), then mirror it into the registry (an index that may be down)."""
    server_records.save(ws, record)
    try:
        from nocodetune import db

        db.register_server(
            ws, id=record.id, kind=record.kind, pid=record.pid, pid_started_at=record.pid_create_time, host=record.host,
            port=record.port, url=record.url, serves=record.serves, log_file=record.log_path,
            meta={"job": record.job, "model": record.model, "background": record.background},
        )
    except Exception as exc:  # noqa: BLE001 - a registry failure never stops a server
        log.debug("registry register_server failed: %s", exc)


def _forget(ws: Workspace, record: ServerRecord) -> None:
    server_records.remove(ws, record)
    try:
        from nocodetune import db

        db.remove_server(ws, record.id)
    except Exception as exc:  # noqa: BLE001 - see _save
        log.debug("registry remove_server failed: %s", exc)


class ServerPlan(BaseModel):
    """A validated request to run a server: everything `start` needs, nothing started yet."""

    workspace: Path
    kind: ServerKind
    host: str
    port: int | None = Field(None, description="None: pick a free port at start.")
    job: str | None = None
    job_dir: Path | None = None
    model: str | None = None
    serves: str

    def command(self, port: int) -> list[str]:
        """The command line of the server process (what a background start spawns)."""
        if self.kind == "model":
            source = ["--job-dir", str(self.job_dir)] if self.job_dir else ["--model", str(self.model)]
            return [sys.executable, "-m", "nocodetune.serving", *source, "--host", self.host, "--port", str(port)]
        return [
            sys.executable, "-m", "nocodetune", "--workspace", str(self.workspace),
            "server", "start", self.kind, "--host", self.host, "--port", str(port), "--managed",
        ]  # fmt: skip


class ServerInfo(ServerRecord):
    """A record plus what only a live look can tell."""

    uptime_seconds: float
    healthy: bool


def plan(ws: Workspace, kind: str, *, job: str | None = None, model: str | None = None, host: str = "127.0.0.1", port: int | None = None) -> ServerPlan:
    """Check a start request without starting anything; every refusal names its field."""
    ws.require()
    if kind not in SERVER_KINDS:
        raise ConfigError(f"unknown server kind {kind!r}; choose one of {', '.join(SERVER_KINDS)}", field="kind")
    if not is_loopback(host) and not get_settings().api_token:
        raise ConfigError(
            f"refusing to listen on {host}: a server reachable from the network needs an API token",
            field="host",
            hint="set NOCODETUNE_API_TOKEN=<secret> (clients send it as 'Authorization: Bearer <secret>'), or use --host 127.0.0.1",
        )
    if port is not None:
        if not 1 <= port <= 65535:
            raise ConfigError(f"port {port} is not between 1 and 65535", field="port")
        if not port_is_free(host, port):
            raise ConflictError(f"port {port} on {host} is already in use", field="port", hint="leave out --port to pick a free one")
    if kind != "model":
        if job or model:
            raise ConfigError(f"a {kind} server serves the workspace; --job and --model are only for `model` servers", field="job" if job else "model")
        return ServerPlan(workspace=ws.root, kind=kind, host=host, port=port, serves=_ROUTES[kind])
    if job and model:
        raise ConfigError("give either --job or --model, not both", field="model")
    if job:
        from nocodetune.modeling.lineage import require_output  # light: no torch at import

        paths = ws.job(job)
        if not paths.root.is_dir():
            raise NotFoundError(f"job {job!r} does not exist", field="job", hint="list jobs with `nocodetune job list`")
        output = require_output(paths)
        return ServerPlan(workspace=ws.root, kind=kind, host=host, port=port, job=job, job_dir=paths.root, serves=f"job {job} ({output.kind})")
    from nocodetune.records.schema import ModelSection
    from nocodetune.model_source import resolve_model

    model = model or "default"
    adapter = Path(model).expanduser()
    if (adapter / "adapter_config.json").is_file() and not (adapter / "config.json").is_file():
        return ServerPlan(workspace=ws.root, kind=kind, host=host, port=port, model=str(adapter.resolve()), serves=f"adapter {adapter.name}")
    resolved = resolve_model(ModelSection(source=model))  # a clear error now, not in the log later
    return ServerPlan(workspace=ws.root, kind=kind, host=host, port=port, model=model, serves=f"model {resolved.display_name}")


def start(
    ws: Workspace,
    kind: str,
    *,
    job: str | None = None,
    model: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    background: bool = False,
    run_foreground: Callable[[ServerPlan, int], None] | None = None,
    startup_timeout: float | None = None,
) -> ServerRecord:
    """Start a server. Background: returns its record once /health answers 200.
    Foreground: records this process and calls `run_foreground(plan, port)` until it returns."""
    the_plan = plan(ws, kind, job=job, model=model, host=host, port=port)
    if background:
        return _start_background(ws, the_plan, startup_timeout or STARTUP_TIMEOUT_S[the_plan.kind])
    if run_foreground is None:
        raise ValueError("a foreground start needs run_foreground (the face that runs the server)")
    chosen = the_plan.port or free_port(host)
    record = _record(ws, the_plan, chosen, os.getpid(), create_time(os.getpid()) or 0.0, None, background=False)
    _save(ws, record)
    try:
        run_foreground(the_plan, chosen)
    finally:
        _forget(ws, record)
    return record


def _start_background(ws: Workspace, the_plan: ServerPlan, timeout: float) -> ServerRecord:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "NOCODETUNE_WORKSPACE": str(ws.root)}
    for attempt in range(1 if the_plan.port else _PORT_RETRIES):
        port = the_plan.port or free_port(the_plan.host)
        log_path = ws.server_logs(the_plan.kind) / f"{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}.log"
        command = the_plan.command(port)
        pid, created = process.spawn(command, log_path, env)
        record = _record(ws, the_plan, port, pid, created, log_path, background=True, command=command)
        _save(ws, record)
        failure = _wait_healthy(record, timeout)
        if failure is None:
            return record
        process.terminate(pid, created, own_group=True, timeout=5)
        _forget(ws, record)
        tail = _tail(log_path, 20)
        if "address already in use" in tail.lower() and not the_plan.port and attempt + 1 < _PORT_RETRIES:
            continue  # another process took the free port first: pick another
        raise NocodetuneError(f"the {the_plan.kind} server did not start: {failure}", file=str(log_path), hint=f"last lines of its log:\n{tail}")
    raise AssertionError("unreachable")


def _record(
    ws: Workspace, the_plan: ServerPlan, port: int, pid: int, created: float, log_path: Path | None, *, background: bool, command: list[str] | None = None
) -> ServerRecord:
    return ServerRecord(
        id=server_id(ws, the_plan.kind, the_plan.host, port),
        kind=the_plan.kind,
        pid=pid,
        pid_create_time=created,
        host=the_plan.host,
        port=port,
        url=url_for(the_plan.host, port),
        serves=the_plan.serves,
        job=the_plan.job,
        model=the_plan.model,
        log_path=str(log_path) if log_path else None,
        background=background,
        command=command or [],
    )


def server_id(ws: Workspace, kind: str, host: str, port: int) -> str:
    """A unique id: `<kind>-<port>` on 127.0.0.1, `<kind>-<port>-<host>` elsewhere (two hosts may share a
    port), with a `-<n>` suffix while another live server holds the same id."""
    base = f"{kind}-{port}" if host == "127.0.0.1" else f"{kind}-{port}-{host_slug(host)}"
    taken = {r.id for r in server_records.load_all(ws) if process.is_alive(r.pid, r.pid_create_time)}
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}-{n}", n + 1
    return candidate


def host_slug(host: str) -> str:
    """A host as a name part (ids become file names and URL segments): '::1' -> '_1', '0.0.0.0' stays."""
    slug = "".join(c if c.isalnum() or c in ".-" else "_" for c in host).strip("_") or "host"
    return slug[:60]


def _wait_healthy(record: ServerRecord, timeout: float) -> str | None:
    """None once GET /health answers 200; else why not (exited, or timed out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.is_alive(record.pid, record.pid_create_time):
            code = process.exit_code(record.pid)
            return f"the process exited{f' with code {code}' if code is not None else ''}"
        if _healthy(record.url, timeout=2.0):
            return None
        time.sleep(0.25)
    return f"no answer from {record.url}/health within {timeout:.0f} s"


def _healthy(url: str, timeout: float = 1.0) -> bool:
    import httpx

    try:
        return httpx.get(f"{url}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def list_servers(ws: Workspace, *, check_health: bool = True) -> list[ServerInfo]:
    """Running servers; records of servers whose process has gone are deleted."""
    out = []
    now = datetime.now(timezone.utc)
    for record in server_records.load_all(ws):
        if not process.is_alive(record.pid, record.pid_create_time):
            _forget(ws, record)
            continue
        healthy = _healthy(record.url) if check_health else True
        out.append(ServerInfo(**record.model_dump(), uptime_seconds=(now - record.started_at).total_seconds(), healthy=healthy))
    return out


def _find(ws: Workspace, server_id: str) -> ServerRecord:
    for record in server_records.load_all(ws):
        if record.id == server_id:
            return record
    known = ", ".join(r.id for r in server_records.load_all(ws)) or "none"
    raise NotFoundError(f"no server {server_id!r} (running: {known})", field="id", hint="see `nocodetune server list`")


def status(ws: Workspace, server_id: str) -> ServerInfo:
    record = _find(ws, server_id)
    if not process.is_alive(record.pid, record.pid_create_time):
        _forget(ws, record)
        raise NotFoundError(f"server {server_id!r} is no longer running", field="id", file=record.log_path, hint="its log file is kept")
    now = datetime.now(timezone.utc)
    return ServerInfo(**record.model_dump(), uptime_seconds=(now - record.started_at).total_seconds(), healthy=_healthy(record.url))


def logs(ws: Workspace, server_id: str, *, tail: int = 200, follow: bool = False, poll_s: float = 0.5) -> Iterator[str]:
    """The last `tail` lines of a server's log; with `follow`, then new lines until it stops."""
    record = _find(ws, server_id)
    if not record.log_path:
        raise NotFoundError(f"server {server_id!r} runs in the foreground of another terminal and has no log file", field="id")
    path = resolve_within(ws.logs, record.log_path, "the workspace's logs folder")  # a record is a file anyone could edit
    if not path.is_file():
        raise NotFoundError(f"log file of server {server_id!r} is missing", file=str(path))
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.readlines()
        yield from (line.rstrip("\n") for line in lines[-tail:] if tail > 0)
        if not follow:
            return
        pending = ""
        while True:
            chunk = fh.readline()
            if chunk:
                pending += chunk
                if pending.endswith("\n"):
                    yield pending.rstrip("\n")
                    pending = ""
                continue
            if not process.is_alive(record.pid, record.pid_create_time):
                if pending:
                    yield pending
                return
            time.sleep(poll_s)


def stop(ws: Workspace, server_id: str, *, timeout: float = 10.0) -> ServerRecord:
    """SIGTERM, wait up to `timeout`, then SIGKILL; the record goes either way."""
    return _stop_record(ws, _find(ws, server_id), timeout)


def _stop_record(ws: Workspace, record: ServerRecord, timeout: float) -> ServerRecord:
    process.terminate(record.pid, record.pid_create_time, own_group=record.background, timeout=timeout)
    _forget(ws, record)
    return record


def stop_all(ws: Workspace, *, timeout: float = 10.0) -> list[ServerRecord]:
    """Stop every recorded server, each by its own record (never by an id another record may share)."""
    return [_stop_record(ws, record, timeout) for record in server_records.load_all(ws)]


def _tail(path: Path, n: int) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:])
    except OSError:
        return ""
