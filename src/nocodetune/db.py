"""The registry: a SQL index of datasets, jobs, runs and servers.

The filesystem stays the source of truth (a job is its folder, a dataset version is its
`meta.json`); the registry makes listing, filtering and progress cheap, remembers which
process runs what (pid + process start time, because pids are reused) and can always be
rebuilt from the workspace with `reindex`. SQLite in the workspace by default (WAL, so
the API, a CLI run and the trainer watcher can write at once); any SQLAlchemy URL via
NOCODETUNE_DATABASE_URL. The schema is owned by Alembic (`migrations/`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, event, select
from sqlalchemy.engine import Engine
from pydantic import BaseModel
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from nocodetune.errors import NocodetuneError
from nocodetune.records.dataset import DatasetVersionMeta, list_versions
from nocodetune.records.events import read_events, summarize_events
from nocodetune.records.job import read_resolved
from nocodetune.records.queue import queued_status, read_entry
from nocodetune.records.runs import list_runs, settle_status
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
log = logging.getLogger(__name__)


class RegistryDamagedError(NocodetuneError):
    """The registry file broke while in use; it has been rebuilt and the action may be retried."""

    status_code = 503


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored here is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    pass


class DatasetRow(Base):
    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    latest_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    versions: Mapped[list["DatasetVersionRow"]] = relationship(back_populates="dataset", cascade="all, delete-orphan", order_by="DatasetVersionRow.version")


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(ForeignKey("datasets.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    file: Mapped[str | None] = mapped_column(String(500))
    format: Mapped[str | None] = mapped_column(String(32))
    rows: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dataset: Mapped[DatasetRow] = relationship(back_populates="versions")


class JobRow(Base):
    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, index=True)
    base: Mapped[str | None] = mapped_column(String(100), index=True)
    parent: Mapped[str | None] = mapped_column(String(100), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="created", index=True)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    queued_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # progress summary, from the last `log` event
    step: Mapped[int | None] = mapped_column(Integer)
    total_steps: Mapped[int | None] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    progress: Mapped[float | None] = mapped_column(Float)
    eta_seconds: Mapped[float | None] = mapped_column(Float)
    tokens_per_second: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    error_kind: Mapped[str | None] = mapped_column(String(16))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    current_run: Mapped[int | None] = mapped_column(Integer)
    runs: Mapped[list["RunRow"]] = relationship(back_populates="job", cascade="all, delete-orphan", order_by="RunRow.n")


class RunRow(Base):
    """One execution of a job (a job resumed twice has three runs)."""

    __tablename__ = "runs"
    __table_args__ = (UniqueConstraint("job_id", "n"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    n: Mapped[int] = mapped_column(Integer)
    executor: Mapped[str] = mapped_column(String(32), default="local")
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_started_at: Mapped[float | None] = mapped_column(Float)
    gpu: Mapped[str | None] = mapped_column(String(32))
    exit_code: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), default="running")
    events_offset: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    log_file: Mapped[str | None] = mapped_column(String(500))
    job: Mapped[JobRow] = relationship(back_populates="runs")


class ServerRow(Base):
    __tablename__ = "servers"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    pid: Mapped[int | None] = mapped_column(Integer)
    pid_started_at: Mapped[float | None] = mapped_column(Float)
    host: Mapped[str] = mapped_column(String(255), default="127.0.0.1")
    port: Mapped[int | None] = mapped_column(Integer)
    url: Mapped[str | None] = mapped_column(String(500))
    serves: Mapped[str | None] = mapped_column(String(500))
    log_file: Mapped[str | None] = mapped_column(String(500))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


# -- engine ---------------------------------------------------------------------------

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def database_url(ws: Workspace) -> str:
    return get_settings().database_url or f"sqlite:///{ws.db_path}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def init_db(ws: Workspace) -> Engine:
    """The engine for this workspace's registry, migrated to the latest schema (once per process).

    A damaged SQLite registry (not a database, malformed pages) is moved aside with a
    timestamp and rebuilt from the workspace, with a warning that says so: the registry
    is an index, so nothing is lost.
    """
    url = database_url(ws)
    repaired: RegistryRepair | None = None
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        repaired = _upgrade(ws, engine, check=_sqlite_file(url))
        _engines[url] = engine
    if repaired is not None:
        _rebuild(ws, repaired)
    return engine


# -- damage: detect, move aside, rebuild ------------------------------------------------


class RegistryRepair(BaseModel):
    """What happened to a damaged registry file."""

    problem: str
    moved_to: str
    counts: dict[str, int] = {}


_DAMAGE_WORDS = ("malformed", "not a database", "corrupt", "disk image")


def _sqlite_file(url: str) -> Path | None:
    """The file of a sqlite URL (None for other databases and in-memory ones)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def is_damage(exc: BaseException) -> bool:
    """Whether a database error means a damaged file (not a busy or missing one)."""
    import sqlite3

    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.DatabaseError):
        return False
    text = str(orig).lower()
    if isinstance(orig, sqlite3.OperationalError):
        return any(w in text for w in _DAMAGE_WORDS)
    return not any(w in text for w in ("locked", "busy", "unable to open"))


def integrity_problem(path: Path) -> str | None:
    """Why the SQLite file at `path` is damaged (PRAGMA quick_check), or None when it is sound or absent."""
    import sqlite3

    if not path.is_file() or path.stat().st_size == 0:
        return None
    try:
        con = sqlite3.connect(str(path), timeout=30)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return str(exc) if is_damage(exc) else None
    problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
    return "; ".join(problems[:3]) if problems else None


def _move_aside(path: Path, problem: str) -> RegistryRepair:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.damaged-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    path.replace(target)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.replace(target.with_name(target.name + suffix))
    return RegistryRepair(problem=problem, moved_to=str(target))


def _rebuild(ws: Workspace, repair: RegistryRepair) -> None:
    repair.counts = reindex(ws, _run_alive(ws))
    log.warning(
        "the registry %s was damaged (%s): moved it to %s and rebuilt it from the workspace (%d jobs, %d dataset versions)",
        ws.db_path, repair.problem, repair.moved_to, repair.counts["jobs"], repair.counts["dataset_versions"],
    )  # fmt: skip
    repairs.append(repair)


repairs: list[RegistryRepair] = []  # what this process repaired (doctor and tests read it)


def _run_alive(ws: Workspace) -> Callable[[str], bool]:
    """`is_running(name)` from the run records: the last run has not ended and its process lives."""
    from nocodetune.processes import is_same_process

    def alive(name: str) -> bool:
        runs = list_runs(ws.job(name))
        last = runs[-1] if runs else None
        return last is not None and last.ended_at is None and is_same_process(last.pid, last.pid_started_at)

    return alive


def repair(ws: Workspace, problem: str) -> RegistryRepair | None:
    """Move a damaged SQLite registry aside and rebuild it now (after a query hit the damage)."""
    path = _sqlite_file(database_url(ws))
    if path is None:
        return None
    from filelock import FileLock

    dispose_all()
    ws.tmp.mkdir(parents=True, exist_ok=True)
    with FileLock(str(ws.tmp / "db-migrate.lock"), timeout=120):
        found = integrity_problem(path) if path.exists() else None
        if found is None and path.exists():
            try:
                import sqlite3

                con = sqlite3.connect(str(path), timeout=30)
                con.execute("SELECT count(*) FROM jobs").fetchall()
                con.close()
                return None  # another process repaired it already
            except sqlite3.DatabaseError as exc:
                if not is_damage(exc):
                    return None
                found = str(exc)
        moved = _move_aside(path, found or problem) if path.exists() else RegistryRepair(problem=problem, moved_to="")
    init_db(ws)  # a fresh, migrated registry
    _rebuild(ws, moved)
    return moved


def _upgrade(ws: Workspace, engine: Engine, check: Path | None = None) -> RegistryRepair | None:
    """`alembic upgrade head`, serialised across processes so two first starts do not race.

    With `check` (the SQLite file), a damaged file is first moved aside (under the same
    lock, so only one process does it); the caller then rebuilds the new registry.
    """
    from alembic import command
    from alembic.config import Config
    from filelock import FileLock

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    ws.tmp.mkdir(parents=True, exist_ok=True)
    moved: RegistryRepair | None = None
    with FileLock(str(ws.tmp / "db-migrate.lock"), timeout=120):
        if check is not None:
            problem = integrity_problem(check)
            if problem is not None:
                moved = _move_aside(check, problem)
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
    return moved


def dispose_all() -> None:
    """Forget cached engines (tests switch databases)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session(ws: Workspace) -> Iterator[Session]:
    """A unit of work: committed on success, rolled back on error.

    A query that finds the registry damaged (it broke after this process opened it)
    repairs it and asks for a retry, instead of a "database disk image is malformed"
    traceback.
    """
    from sqlalchemy.exc import DatabaseError

    maker = sessionmaker(init_db(ws), expire_on_commit=False)
    with maker() as s:
        try:
            yield s
            s.commit()
        except DatabaseError as exc:
            s.rollback()
            if not is_damage(exc):
                raise
            done = repair(ws, str(getattr(exc, "orig", exc)))
            raise RegistryDamagedError(
                f"the registry {ws.db_path.name} was damaged ({getattr(exc, 'orig', exc)})"
                + (f"; it was moved to {Path(done.moved_to).name} and rebuilt from the workspace" if done and done.moved_to else ""),
                file=str(ws.db_path),
                hint="run the command again (the registry is an index of the workspace: nothing was lost)",
            ) from None
        except BaseException:
            s.rollback()
            raise


# -- servers (used by the server manager) ----------------------------------------------


def register_server(
    ws: Workspace,
    *,
    id: str,
    kind: str,
    pid: int | None,
    pid_started_at: float | None,
    host: str,
    port: int | None,
    url: str | None,
    serves: str | None = None,
    log_file: str | None = None,
    meta: dict[str, Any] | None = None,
) -> ServerRow:
    """Insert or replace the record of a started AI server."""
    with session(ws) as s:
        row = s.get(ServerRow, id) or ServerRow(id=id)
        row.kind, row.pid, row.pid_started_at = kind, pid, pid_started_at
        row.host, row.port, row.url, row.serves, row.log_file = host, port, url, serves, log_file
        row.started_at = utcnow()
        row.meta = meta or {}
        s.add(row)
    return row


def list_servers(ws: Workspace, kind: str | None = None) -> list[ServerRow]:
    with session(ws) as s:
        query = select(ServerRow).order_by(ServerRow.started_at)
        if kind:
            query = query.where(ServerRow.kind == kind)
        return list(s.scalars(query))


def remove_server(ws: Workspace, id: str) -> bool:
    with session(ws) as s:
        row = s.get(ServerRow, id)
        if row is None:
            return False
        s.delete(row)
        return True


# -- rebuild from the workspace -------------------------------------------------------


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    if isinstance(value, str):
        try:
            return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return None
    return None


def reindex_datasets(ws: Workspace) -> int:
    """Replace dataset rows with what `files/*/v*/meta.json` say; return the number of versions."""
    found: dict[str, list[DatasetVersionMeta]] = {}
    for folder in sorted(ws.files.iterdir()) if ws.files.is_dir() else []:
        try:
            versions = list_versions(folder)
        except NocodetuneError:
            continue  # a damaged meta.json: the store reports it when the dataset is used
        if versions:
            found[folder.name] = versions
    count = 0
    with session(ws) as s:
        for row in s.scalars(select(DatasetRow)):
            s.delete(row)
        s.flush()
        for name, versions in found.items():
            ds = DatasetRow(name=name, latest_version=versions[-1].version, created_at=as_utc(versions[0].created_at))
            for meta in versions:
                ds.versions.append(
                    DatasetVersionRow(
                        version=meta.version, sha256=meta.sha256, file=meta.file, format=meta.format, rows=meta.rows,
                        size_bytes=meta.size_bytes, created_at=as_utc(meta.created_at), meta=meta.model_dump(mode="json"),
                    )
                )
                count += 1
            s.add(ds)
    return count


def reindex_jobs(ws: Workspace, is_running: Callable[[str], bool] = lambda _name: False) -> int:
    """Replace job rows with what `jobs/*/resolved.json` + `logs/events.jsonl` say.

    Run history comes from the run records (`logs/run-<n>.json`); `is_running(name)` tells
    which jobs a live process still holds (the job service passes a lock probe).
    """
    folders = sorted(p for p in ws.jobs.glob("*/resolved.json")) if ws.jobs.is_dir() else []
    with session(ws) as s:
        for row in s.scalars(select(JobRow)):
            s.delete(row)
        s.flush()
        for resolved_path in folders:
            row = job_row_from_folder(ws, resolved_path.parent.name, is_running)
            if row is not None:
                s.add(row)
    return len(folders)


def job_row_from_folder(ws: Workspace, name: str, is_running: Callable[[str], bool]) -> JobRow | None:
    """A fresh registry row for a job folder (None when it has no readable resolved.json)."""
    paths = ws.job(name)
    try:
        resolved = read_resolved(paths)
    except NocodetuneError:
        return None
    events, _ = read_events(paths.events)
    runs = list_runs(paths)
    fields = queued_status(settle_status(summarize_events(events), runs, alive=is_running(name)), read_entry(paths))
    logs = paths.run_logs()
    current = max([r.n for r in runs] + [int(p.stem.split("-")[1]) for p in logs if p.stem.split("-")[1].isdigit()], default=None)
    row = JobRow(
        name=name,
        base=resolved.lineage.base,
        parent=resolved.lineage.parent,
        description=resolved.config.description,
        created_at=_parse_time(resolved.created_at),
        current_run=current,
        **fields,
    )
    for run in runs:
        row.runs.append(
            RunRow(
                n=run.n, executor=run.executor, pid=run.pid, pid_started_at=run.pid_started_at, gpu=run.gpu, exit_code=run.exit_code,
                status=run.status, events_offset=run.events_offset, started_at=as_utc(run.started_at), ended_at=as_utc(run.ended_at),
                log_file=run.log_file,
            )
        )
    return row



def reindex(ws: Workspace, is_running: Callable[[str], bool] = lambda _name: False) -> dict[str, int]:
    """Rebuild the registry from the folders: datasets from meta.json, jobs from their folders."""
    return {"dataset_versions": reindex_datasets(ws), "jobs": reindex_jobs(ws, is_running)}
