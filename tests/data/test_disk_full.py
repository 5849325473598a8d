"""A full disk during `data add` leaves no half-written version and says what happened.

The workspace lives on a tiny tmpfs (tests run as root in CI; elsewhere they skip with the
reason). The disk fills at every step of an add in turn — while the upload is received,
while it is flushed, while meta.json or the version marker is written — and after each the
workspace holds either a complete, readable version or nothing at all.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from nocodetune.data.staging import StorageFullError
from nocodetune.data.store import DatasetStore
from nocodetune.records.dataset import is_version_dir
from nocodetune.workspace import Workspace
from tests.data.conftest import leftovers, staging_dirs

FS_BYTES = 512 * 1024
ROW = "a line of text for the tiny disk,label\n"


@pytest.fixture
def tiny_ws(tmp_path: Path) -> Iterator[Workspace]:
    """A workspace on a 512 KiB tmpfs of its own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(mount)], capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip() or 'mount failed'}); run as root to test a full disk")
    try:
        ws = Workspace(mount / "ws")
        ws.create_layout()
        yield ws
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _csv(tmp_path: Path, kib: int, tag: str = "") -> Path:
    path = tmp_path / f"data{tag}.csv"
    path.write_text("text,label\n" + ROW * (kib * 1024 // len(ROW)) + f"last{tag},x\n")
    return path


def _fill(ws: Workspace, leave: int) -> Path:
    """Fill the disk until `leave` bytes (about) are free."""
    import os

    filler = ws.root / "filler.bin"
    stat = os.statvfs(ws.root)
    free = stat.f_bavail * stat.f_frsize
    with open(filler, "wb") as fh:
        fh.write(b"\0" * max(0, free - leave))
    return filler


def _complete_or_nothing(ws: Workspace, store: DatasetStore) -> list[int]:
    """Every version folder is complete and readable, no staging is left; the versions that exist."""
    assert staging_dirs(ws) == []
    folder = ws.files / "notes"
    versions = []
    if folder.exists():
        for child in folder.iterdir():
            if child.name.startswith("v"):
                assert is_version_dir(child), f"{child.name} has no meta.json: a half-written version"
                versions.append(int(child.name[1:]))
    for version in versions:
        assert store.preview("notes", version, 0, 1).rows == [{"text": ROW.split(",")[0], "label": "label"}]
    return sorted(versions)


def test_a_file_larger_than_the_free_space(tiny_ws: Workspace, tmp_path: Path) -> None:
    store = DatasetStore(tiny_ws)
    with pytest.raises(StorageFullError) as info:
        store.add(_csv(tmp_path, 700), "notes")
    err = info.value
    assert err.status_code == 507 and err.file == "data.csv"
    assert err.message.startswith("no space left on device while receiving data.csv (") and err.message.endswith("nothing was stored")
    assert leftovers(tiny_ws) == []
    assert store.add(_csv(tmp_path, 40), "notes").meta.version == 1  # the space it took is back


def test_the_disk_filling_at_every_step_leaves_a_version_or_nothing(tiny_ws: Workspace, tmp_path: Path) -> None:
    """Free space from 0 to 64 KiB beside a 24 KiB file: the disk runs out at each step of an add in turn."""
    store = DatasetStore(tiny_ws)
    outcomes = set()
    for step, leave in enumerate(range(0, 64 * 1024, 2048)):
        source = _csv(tmp_path, 24, tag=str(step))
        filler = _fill(tiny_ws, leave)
        before = _complete_or_nothing(tiny_ws, store)
        try:
            meta = store.add(source, "notes").meta
            outcomes.add("stored")
            assert _complete_or_nothing(tiny_ws, store) == [*before, meta.version]
        except StorageFullError as exc:
            outcomes.add(exc.message.split(" while ")[1].split(" ")[0])  # receiving / storing / locking
            assert exc.message.startswith("no space left on device while ")
            assert _complete_or_nothing(tiny_ws, store) == before
        finally:
            filler.unlink()
    assert outcomes == {"stored", "receiving", "storing"}, outcomes  # full while receiving, while flushing/writing meta, or not
    versions = _complete_or_nothing(tiny_ws, store)
    assert store.add(_csv(tmp_path, 8, tag="after"), "notes").meta.version > max(versions, default=0)


def test_cli_and_api_say_what_happened(tiny_ws: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from nocodetune.api.app import create_app
    from nocodetune.cli.main import app
    from tests.live_server import serve_in_thread

    big = _csv(tmp_path, 700)
    result = CliRunner().invoke(app, ["--workspace", str(tiny_ws.root), "data", "add", str(big), "--name", "notes"])
    assert isinstance(result.exception, StorageFullError)
    assert leftovers(tiny_ws) == []

    monkeypatch.delenv("NOCODETUNE_API_TOKEN", raising=False)
    with serve_in_thread(create_app(tiny_ws, routes=("files",))) as url:
        response = httpx.post(f"{url}/api/files", files={"file": ("data.csv", big.read_bytes())}, data={"name": "notes"}, timeout=30)
    assert response.status_code == 507, response.text
    body = response.json()
    assert body["error"] == "StorageFullError" and body["message"].startswith("no space left on device while receiving data.csv")
    assert leftovers(tiny_ws) == []
