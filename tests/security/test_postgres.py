"""The --postgres pass really runs on PostgreSQL: the registry's rows are in the cluster, not in a file."""

from __future__ import annotations

import os

import pytest

from nocodetune import db
from nocodetune.doctor import check_registry
from nocodetune.jobs.service import JobService
from nocodetune.workspace import Workspace

pytestmark = pytest.mark.postgres


def test_the_registry_lives_in_postgresql(api_ws: Workspace) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    url = db.database_url(api_ws)
    assert url.startswith("postgresql+psycopg://") and url == os.environ["NOCODETUNE_DATABASE_URL"]
    rows, total = JobService(api_ws).list()
    assert total == 1 and rows[0].name == "demo_job"
    assert not api_ws.db_path.exists()  # no SQLite file was made
    assert db.reindex(api_ws) == {"dataset_versions": 2, "jobs": 1}
    parsed = make_url(url)
    with psycopg.connect(host=parsed.query["host"], user=parsed.username, dbname=parsed.database) as conn:
        assert conn.execute("SELECT name FROM jobs").fetchall() == [("demo_job",)]
        assert conn.execute("SELECT count(*) FROM dataset_versions").fetchone() == (2,)
    check = check_registry(api_ws)
    assert check.status == "ok" and "postgresql" in check.detail and "1 jobs" in check.detail


def test_doctor_reports_an_unreachable_database(api_ws: Workspace, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    db.dispose_all()
    monkeypatch.setenv("NOCODETUNE_DATABASE_URL", f"postgresql+psycopg://postgres@/nosuchdb?host={tmp_path}")
    check = check_registry(api_ws)
    assert check.status == "fail" and "NOCODETUNE_DATABASE_URL" in (check.fix or "")
