"""Hostile files and names through both faces: `nocodetune data add` and `POST /api/files`.

For every case: either a correct load (rows, and the first value read back right) or a
clear error that names the file and the row/line/column; never a traceback on stderr,
never a 5xx, and nothing half-written in the workspace. The CLI runs in-process through
its real entry point (`cli.main.run`, which is what the console script calls), so an
exception escaping it fails the test exactly where a user would see a traceback.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from nocodetune.data.store import DatasetStore
from nocodetune.records.dataset import META_FILE, is_version_dir
from nocodetune.workspace import Workspace
from tests.data.conftest import leftovers
from tests.hostile.cases import DATASET_NAMES, ENCODING_NAMES, FILES, TURKISH, UPLOAD_NAMES, FileCase, NameCase, _csv

pytestmark = pytest.mark.timeout(120)
BOUNDARY = "nocodetune-hostile-7d3f"


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    workspace = Workspace(tmp_path / "ws")
    workspace.create_layout()
    return workspace


@pytest.fixture
def client(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    from nocodetune.api.app import create_app

    monkeypatch.delenv("NOCODETUNE_API_TOKEN", raising=False)
    monkeypatch.setenv("NOCODETUNE_MAX_UPLOAD_MB", "16")
    with TestClient(create_app(ws, routes=("files",)), raise_server_exceptions=False) as c:
        yield c


# -- the two faces ------------------------------------------------------------------------
def cli(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    """Run `nocodetune ARGS` through the console-script entry point; (exit code, stdout, stderr)."""
    from nocodetune.cli.main import run

    monkeypatch.setattr(sys, "argv", ["nocodetune", *args])
    monkeypatch.setenv("COLUMNS", "100000")  # one line is one line, not what rich wraps
    capsys.readouterr()
    try:
        run()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out, err = capsys.readouterr()
    return code, out, err


def multipart(filename: str, content: bytes, **fields: str) -> tuple[bytes, dict[str, str]]:
    """A multipart body built by hand, so that NULs, line breaks and slashes reach the server as sent."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode() + value.encode("utf-8", "surrogatepass") + b"\r\n"
        for key, value in fields.items()
    ]
    parts.append(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="'.encode()
        + filename.encode("utf-8", "surrogatepass")
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + content
        + b"\r\n"
    )
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode(), {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}


def api_add(client: TestClient, filename: str, content: bytes, **fields: str):  # type: ignore[no-untyped-def]
    body, headers = multipart(filename, content, **fields)
    response = client.post("/api/files", content=body, headers=headers)
    assert response.status_code < 500, f"{response.status_code}: {response.text}"
    assert response.headers["content-type"].startswith("application/json"), response.text
    return response


# -- what a clean outcome is ------------------------------------------------------------------
def assert_clean_refusal_cli(code: int, out: str, err: str, *mentions: str) -> None:
    assert code == 2, f"exit {code}\nstdout: {out}\nstderr: {err}"
    assert "Traceback" not in err and 'File "' not in err, err
    lines = err.rstrip("\n").split("\n")
    assert lines[0].startswith("Error: "), err
    assert len(lines) <= 2 and (len(lines) == 1 or lines[1].startswith("Hint: ")), err  # the message, and a hint
    for mention in mentions:
        assert mention in lines[0], f"{mention!r} not in {lines[0]!r}"


def assert_nothing_half_written(ws: Workspace) -> None:
    assert leftovers(ws) == [] or all(is_version_dir(p) for p in ws.files.glob("*/v*")), leftovers(ws)
    staging = [p.name for p in ws.tmp.iterdir() if p.is_dir() and p.name != "locks"] if ws.tmp.is_dir() else []
    assert staging == []
    for version_dir in ws.files.glob("*/v*"):
        assert is_version_dir(version_dir), f"{version_dir} has no meta.json"


def assert_loaded(ws: Workspace, name: str, case: FileCase | None = None) -> None:
    store = DatasetStore(ws)
    meta = store.version(name)
    assert (ws.files / name / f"v{meta.version}" / META_FILE).is_file()
    if case is not None:
        assert meta.rows == case.rows
        page = store.preview(name, meta.version, 0, 1)
        if case.first is not None:
            assert page.rows[0] == case.first
    assert_nothing_half_written(ws)


# -- files -----------------------------------------------------------------------------------
@pytest.mark.parametrize("case", FILES, ids=[c.id for c in FILES])
def test_file_through_the_cli(case: FileCase, ws: Workspace, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / case.filename
    path.write_bytes(case.make())
    code, out, err = cli(["--workspace", str(ws.root), "data", "add", str(path), "--name", "hostile"], capsys, monkeypatch)
    if case.loads:
        assert code == 0 and err == "", f"exit {code}\nstdout: {out}\nstderr: {err}"
        assert "added hostile@1" in out
        assert_loaded(ws, "hostile", case)
    else:
        assert_clean_refusal_cli(code, out, err, case.filename, case.needle)
        assert leftovers(ws) == []


@pytest.mark.parametrize("case", FILES, ids=[c.id for c in FILES])
def test_file_through_the_api(case: FileCase, ws: Workspace, client: TestClient) -> None:
    response = api_add(client, case.filename, case.make(), name="hostile")
    if case.loads:
        assert response.status_code == 201, response.text
        assert response.json()["rows"] == case.rows
        preview = client.get("/api/files/hostile/versions/1/preview", params={"limit": 1})
        assert preview.status_code == 200, preview.text
        if case.first is not None:
            assert preview.json()["rows"][0] == case.first
        assert_loaded(ws, "hostile", case)
    else:
        assert 400 <= response.status_code < 500, response.text
        body = response.json()
        assert body["file"] == case.filename and case.filename in body["message"] and case.needle in body["message"], body
        assert leftovers(ws) == []


def test_the_console_script_prints_one_line_for_what_used_to_be_a_traceback(ws: Workspace, tmp_path: Path) -> None:
    """The real `nocodetune` process, for the issue's 63-line RecursionError."""
    [case] = [c for c in FILES if c.id == "deep-json"]
    path = tmp_path / case.filename
    path.write_bytes(case.make())
    proc = subprocess.run(
        [sys.executable, "-c", "from nocodetune.cli.main import run; run()", "--workspace", str(ws.root), "data", "add", str(path)],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "COLUMNS": "1000"},
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("Error: deep.json: JSON nested more than 100 levels deep at line 1")
    assert leftovers(ws) == []


def test_the_suite_is_as_big_as_promised() -> None:
    assert len(FILES) >= 40 and len(DATASET_NAMES) + len(UPLOAD_NAMES) >= 15
    assert {c.id for c in FILES} == {c.id for c in FILES if c.loads} | {c.id for c in FILES if not c.loads}


# -- names ------------------------------------------------------------------------------------
def _content_for(filename: str) -> bytes:
    if filename.lower().endswith(".json"):
        return b'[{"text": "a"}]'
    return _csv([("hello", "1")]).encode()


@pytest.mark.parametrize("case", DATASET_NAMES, ids=[c.id for c in DATASET_NAMES])
def test_dataset_name(case: NameCase, ws: Workspace, client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(_content_for("data.csv"))
    code, out, err = cli(["--workspace", str(ws.root), "data", "add", str(path), f"--name={case.value}"], capsys, monkeypatch)
    response = api_add(client, "data.csv", path.read_bytes(), name=case.value)
    if case.loads is None:  # either outcome, but the same from both faces, and clean
        assert (code == 0) == (response.status_code in (200, 201)), (code, err, response.text)
    if case.loads or (case.loads is None and code == 0):
        assert code == 0 and err == "", err
        assert response.status_code == 200 and response.json()["created"] is False  # the CLI stored these bytes first
        assert_loaded(ws, case.value)
        assert [p.name for p in ws.files.iterdir()] == [case.value]
    else:
        assert_clean_refusal_cli(code, out, err)
        assert "invalid dataset name" in err or "required" in err
        assert response.status_code in (400, 422), response.text
        body = response.json()
        assert body["field"] in (case.field, "name"), body
        assert leftovers(ws) == [] and list(ws.files.iterdir()) == []


@pytest.mark.parametrize("case", UPLOAD_NAMES, ids=[c.id for c in UPLOAD_NAMES])
def test_upload_file_name(case: NameCase, ws: Workspace, client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    content = _content_for(case.value)
    response = api_add(client, case.value, content, name="upload")
    if case.loads:
        assert response.status_code == 201, response.text
        meta = response.json()
        assert meta["original_filename"] == case.value
        stored = ws.files / "upload" / "v1" / meta["file"]
        assert stored.read_bytes() == content and meta["file"] != META_FILE
        assert all(c.isascii() and (c.isalnum() or c in "._-") for c in meta["file"]), meta["file"]
        assert_loaded(ws, "upload")
    else:
        assert response.status_code in (400, 422), response.text
        body = response.json()
        assert body.get("field") == case.field or body.get("file") is not None, body
        assert leftovers(ws) == []
    if not case.on_disk:
        return  # no file on disk can have this name: the CLI never receives it
    (tmp_path / "in").mkdir()
    path = tmp_path / "in" / case.value
    path.write_bytes(content)
    code, out, err = cli(["--workspace", str(ws.root), "data", "add", str(path), "--name", "cli-upload"], capsys, monkeypatch)
    if case.loads:
        assert code == 0 and err == "", err
        assert_loaded(ws, "cli-upload")
    else:
        assert_clean_refusal_cli(code, out, err)
        assert not (ws.files / "cli-upload").exists()


@pytest.mark.parametrize("case", ENCODING_NAMES, ids=[c.id for c in ENCODING_NAMES])
def test_encoding_names(case: NameCase, ws: Workspace, client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    content = _csv(TURKISH).encode("cp1254")
    response = api_add(client, "tr.csv", content, name="enc", encoding=case.value)
    path = tmp_path / "tr.csv"
    path.write_bytes(content)
    code, out, err = cli(["--workspace", str(ws.root), "data", "add", str(path), "--name", "enc-cli", f"--encoding={case.value}"], capsys, monkeypatch)
    if case.loads:
        assert response.status_code == 201 and response.json()["encoding"] == "cp1254" and response.json()["encoding_source"] == "given"
        assert code == 0 and "cp1254 (as given)" in out, out
        assert DatasetStore(ws).preview("enc", 1, 0, 1).rows == [{"text": "şeker ığdır", "label": "1"}]
    else:
        assert response.status_code == 422 and response.json()["field"] == "encoding", response.text
        assert_clean_refusal_cli(code, out, err)
        assert "encoding" in err
        assert leftovers(ws) == []
