"""The registry: a SQL index of datasets, jobs, runs and servers.

The filesystem stays the source of truth (a job is its folder, a dataset version is its
`meta.json`); the registry makes listing, filtering and progress cheap, remembers which
process runs what (pid + process start time, because pids are reused) and can always be
rebuilt from the workspace with `reindex`. SQLite in the workspace by default (WAL, so
the API, a CLI run and the trainer watcher can write at once); any SQLAlchemy URL via
NOCODETUNE_DATABASE_URL. The schema is owned by Alembic (`migrations/`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, Text, UniqueConstraint, create_engine, event, select
from sqlalchemy.engine import Engine
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
    """The engine for this workspace's registry, migrated to the latest schema (once per process)."""
    url = database_url(ws)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        _upgrade(ws, engine)
        _engines[url] = engine
        return engine


def _upgrade(ws: Workspace, engine: Engine) -> None:
    """`alembic upgrade head`, serialised across processes so two first starts do not race."""
    from alembic import command
    from alembic.config import Config
    from filelock import FileLock

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    ws.tmp.mkdir(parents=True, exist_ok=True)
    with FileLock(str(ws.tmp / "db-migrate.lock"), timeout=120):
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")


def dispose_all() -> None:
    """Forget cached engines (tests switch databases)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def session(ws: Workspace) -> Iterator[Session]:
    """A unit of work: committed on success, rolled back on error."""
    maker = sessionmaker(init_db(ws), expire_on_commit=False)
    with maker() as s:
        try:
            yield s
            s.commit()
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
