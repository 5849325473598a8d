"""`pytest --postgres`: run the selected tests against a real PostgreSQL instead of SQLite.

Loaded for every run (pyproject's addopts has `-p tests.security.postgres_plugin`) and
idle unless `--postgres` is given. Then it starts a throwaway cluster from Debian's
`postgresql` binaries (initdb into a temporary folder, listening on a Unix socket only,
never on a TCP port), gives every test a fresh database through
NOCODETUNE_DATABASE_URL=postgresql+psycopg://..., and stops the cluster at the end.

initdb refuses to run as root, so as root the cluster runs as the `postgres` user
(`runuser -u postgres`); as anyone else it runs as that user.

Tests that are about SQLite itself are marked `sqlite_only` and skipped in this pass.
CI runs (see docs/security.md):

    python -m pytest --postgres -m "not slow and not browser" tests/jobs/test_registry.py \\
        tests/jobs/test_service.py tests/api tests/security/test_postgres.py
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_counter = itertools.count(1)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--postgres", action="store_true", default=False, help="run the registry against a throwaway PostgreSQL cluster (Debian's postgresql package)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: about the SQLite registry file itself; skipped with --postgres")
    config.addinivalue_line("markers", "postgres: needs a PostgreSQL cluster (runs only with --postgres)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    on = config.getoption("--postgres")
    for item in items:
        if on and "sqlite_only" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="about the SQLite registry file; this pass runs on PostgreSQL"))
        if not on and "postgres" in item.keywords:
            item.add_marker(pytest.mark.skip(reason="needs --postgres (a throwaway PostgreSQL cluster)"))


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    return Path(found[-1]).parent if found else None


class Cluster:
    """A PostgreSQL cluster in a temporary folder, reachable on a Unix socket only."""

    def __init__(self) -> None:
        bindir = postgres_bin()
        if bindir is None:
            raise RuntimeError("PostgreSQL binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
        self.bin = bindir
        self.root = Path(tempfile.mkdtemp(prefix="nocodetune-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log = self.root / "server.log"
        self.as_postgres = os.geteuid() == 0
        self.user = "postgres"

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=check)

    def start(self) -> "Cluster":
        self.socket_dir.mkdir(parents=True)
        self.root.chmod(0o755)
        if self.as_postgres:
            shutil.chown(self.root, "postgres")
            shutil.chown(self.socket_dir, "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "--encoding=UTF8", "--no-instructions")
        options = f"-c listen_addresses='' -k {self.socket_dir} -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        done = self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start", check=False)
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr}\n{self.log.read_text() if self.log.exists() else ''}")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://{self.user}@/{database}?host={self.socket_dir}"

    def admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host=str(self.socket_dir), user=self.user, dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)


@pytest.fixture(scope="session")
def postgres_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster | None]:
    if not request.config.getoption("--postgres"):
        yield None
        return
    cluster = Cluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(autouse=True)
def _registry_on_postgres(request: pytest.FixtureRequest, postgres_cluster: Cluster | None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """With --postgres: a fresh database per test, set after the suite's own env isolation (which clears the URL)."""
    if postgres_cluster is None:
        yield
        return
    request.getfixturevalue("_isolated_env")  # runs first: it removes NOCODETUNE_DATABASE_URL
    name = f"nct_{os.getpid()}_{next(_counter)}"
    postgres_cluster.admin(f'CREATE DATABASE "{name}"')
    monkeypatch.setenv("NOCODETUNE_DATABASE_URL", postgres_cluster.url(name))
    try:
        yield
    finally:
        from nocodetune import db

        db.dispose_all()
        postgres_cluster.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
