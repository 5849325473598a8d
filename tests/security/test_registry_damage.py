"""A damaged registry (garbage, or a real one cut short) is moved aside and rebuilt; doctor reports it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nocodetune import db
from nocodetune.doctor import check_registry
from nocodetune.workspace import Workspace

pytestmark = pytest.mark.sqlite_only  # damage to the registry *file*


def _damage(ws: Workspace, how: str, tmp_path: Path) -> None:
    db.dispose_all()
    path = ws.db_path
    for side in ("-wal", "-shm"):
        Path(str(path) + side).unlink(missing_ok=True)
    if how == "garbage":
        path.write_bytes(b"this is not a database\x00" * 400)
    else:  # a real registry cut in the middle of its pages
        good = tmp_path / "copy.db"
        shutil.copy(path, good)
        data = good.read_bytes()
        assert len(data) > 8192
        path.write_bytes(data[: len(data) // 2])


@pytest.fixture
def filled(api_ws: Workspace) -> Workspace:
    """A registry with content: checkpointed into the main file so that cutting it really damages it."""
    from sqlalchemy import text

    db.reindex(api_ws)
    with db.init_db(api_ws).connect() as conn:
        conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    db.dispose_all()
    return api_ws


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_cli_job_list_rebuilds_a_damaged_registry_and_says_so(filled: Workspace, cli, tmp_path: Path, how: str, caplog) -> None:
    _damage(filled, how, tmp_path)
    check = check_registry(filled)
    assert check.status == "fail" and "reindex" in (check.fix or ""), check

    code, out, err = cli("--workspace", str(filled.root), "job", "list")
    assert code == 0, err
    assert "demo_job" in out
    moved = list(filled.root.glob("nocodetune.db.damaged-*"))
    assert len(moved) == 1 and moved[0].stat().st_size > 0  # kept for a post-mortem, not deleted
    said = err + caplog.text
    assert "damaged" in said and moved[0].name in said and "rebuilt" in said
    assert check_registry(filled).status == "ok"
    assert db.repairs[-1].counts == {"dataset_versions": 2, "jobs": 1}  # demo@1 and sums@1, demo_job


def test_workspace_reindex_on_a_damaged_registry(filled: Workspace, cli, tmp_path: Path) -> None:
    _damage(filled, "garbage", tmp_path)
    code, out, err = cli("--workspace", str(filled.root), "workspace", "reindex")
    assert code == 0, err
    assert "1 jobs, 2 dataset versions" in " ".join(out.split())


def test_doctor_says_all_is_well_only_when_it_is(filled: Workspace, cli, tmp_path: Path) -> None:
    code, out, _ = cli("--workspace", str(filled.root), "doctor", "--skip-torch", "--json")
    import json

    checks = {c["name"]: c for c in json.loads(out)["checks"]}
    assert checks["registry"]["status"] == "ok"
    _damage(filled, "truncated", tmp_path)
    code, out, _ = cli("--workspace", str(filled.root), "doctor", "--skip-torch", "--json")
    report = json.loads(out)
    checks = {c["name"]: c for c in report["checks"]}
    assert code == 1 and not report["ok"] and checks["registry"]["status"] == "fail"
    assert not list(filled.root.glob("nocodetune.db.damaged-*"))  # doctor only looks


def test_damage_found_by_a_running_process_is_repaired(filled: Workspace, tmp_path: Path) -> None:
    """The API keeps its engine: a registry that breaks under it is rebuilt at the first query that notices."""
    from nocodetune.errors import NocodetuneError
    from nocodetune.jobs.service import JobService

    service = JobService(filled)
    assert [r.name for r in service.list()[0]] == ["demo_job"]
    db.dispose_all()  # close the pooled connections, then damage the file under the cached URL
    _damage(filled, "garbage", tmp_path)
    db._engines.clear()
    engine_url = db.database_url(filled)
    from sqlalchemy import create_engine

    db._engines[engine_url] = create_engine(engine_url)  # as if opened before the damage
    with pytest.raises(NocodetuneError, match="damaged") as info:
        service.list()
    assert "run the command again" in (info.value.hint or "")
    assert [r.name for r in service.list()[0]] == ["demo_job"]
    assert list(filled.root.glob("nocodetune.db.damaged-*"))
