"""The registry is an index: rebuilt from the folders, healed when they change behind its back."""

from __future__ import annotations

from sqlalchemy import select

from nocodetune import db
from nocodetune.data.store import DatasetStore
from nocodetune.records.events import EventWriter
from nocodetune.jobs.registry import lock_probe
from nocodetune.jobs.service import JobService
from tests.jobs.conftest import fake_command, make_job_folder


def test_reindex_rebuilds_jobs_and_datasets_from_the_folders(ws, tmp_path):
    csv = tmp_path / "qa.csv"
    csv.write_text("question,answer\nhi,hello\n")
    DatasetStore(ws).add(csv, "qa")
    csv.write_text("question,answer\nhi,hello\nbye,goodbye\n")
    DatasetStore(ws).add(csv, "qa")
    make_job_folder(ws, "done")
    make_job_folder(ws, "broken", parent="done")
    make_job_folder(ws, "fresh")
    JobService(ws, command=fake_command("--steps", "3", "--sleep", "0.01")).run_foreground("done")
    events = EventWriter(ws.job("broken").events, run=1)
    events.emit("started", total_steps=10)
    events.emit("log", step=4, total_steps=10, loss=1.5, progress=0.4)  # then the machine died

    db.dispose_all()
    ws.db_path.unlink(missing_ok=True)  # SQLite: the file goes; PostgreSQL (--postgres): reindex replaces every row
    for suffix in ("-wal", "-shm"):
        ws.db_path.with_name(ws.db_path.name + suffix).unlink(missing_ok=True)
    counts = db.reindex(ws, lock_probe(ws))

    assert counts == {"jobs": 3, "dataset_versions": 2}
    with db.session(ws) as s:
        jobs = {row.name: row for row in s.scalars(select(db.JobRow))}
        datasets = list(s.scalars(select(db.DatasetRow)))
        assert [(d.name, d.latest_version, [v.version for v in d.versions]) for d in datasets] == [("qa", 2, [1, 2])]
        assert datasets[0].versions[1].rows == 2 and datasets[0].versions[1].sha256
    assert jobs["done"].status == "succeeded" and jobs["done"].progress == 1.0 and jobs["done"].current_run == 1
    assert jobs["broken"].status == "failed" and jobs["broken"].error.startswith("interrupted") and jobs["broken"].step == 4
    assert jobs["broken"].parent == "done"
    assert jobs["fresh"].status == "created" and jobs["fresh"].base == "lora_train"


def test_job_list_heals_itself_when_folders_change(ws):
    service = JobService(ws, command=fake_command())
    make_job_folder(ws, "early")
    assert [r.name for r in service.list()[0]] == ["early"]
    make_job_folder(ws, "by_hand")  # made without the service
    rows, total = service.list()
    assert total == 2 and {r.name for r in rows} == {"early", "by_hand"}
    import shutil

    shutil.rmtree(ws.job("early").root)  # removed without the service
    rows, total = service.list()
    assert total == 1 and rows[0].name == "by_hand"
    assert service.get("by_hand").status == "created"


def test_servers_are_registered_listed_and_removed(ws):
    db.register_server(ws, id="model-1", kind="model", pid=123, pid_started_at=1.5, host="127.0.0.1", port=8001, url="http://127.0.0.1:8001", serves="jobs/x/outputs/adapter")
    db.register_server(ws, id="api-1", kind="api", pid=124, pid_started_at=2.5, host="127.0.0.1", port=8000, url="http://127.0.0.1:8000")
    assert [s.id for s in db.list_servers(ws)] == ["model-1", "api-1"]
    assert [s.serves for s in db.list_servers(ws, kind="model")] == ["jobs/x/outputs/adapter"]
    assert db.remove_server(ws, "model-1") is True and db.remove_server(ws, "model-1") is False
    assert [s.id for s in db.list_servers(ws)] == ["api-1"]


def test_database_url_setting_moves_the_registry(ws, tmp_path, monkeypatch):
    other = tmp_path / "elsewhere.db"
    monkeypatch.setenv("NOCODETUNE_DATABASE_URL", f"sqlite:///{other}")
    db.dispose_all()
    make_job_folder(ws, "moved")
    assert JobService(ws).get("moved").status == "created"
    assert other.exists() and not ws.db_path.exists()


def test_the_alembic_migration_builds_exactly_the_models(ws):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = db.init_db(ws)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn)
        assert context.get_current_revision() == "0001_initial"
        assert compare_metadata(context, db.Base.metadata) == []
