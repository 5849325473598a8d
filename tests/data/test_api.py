"""The Files REST routes over real HTTP: a live uvicorn server on 127.0.0.1, an httpx client."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from nocodetune.data.store import DatasetStore
from nocodetune.workspace import Workspace
from tests.data.conftest import REVIEWS_CSV, fake_job, leftovers, staging_dirs

pytestmark = pytest.mark.timeout(120)


def upload(base: str, filename: str, body: bytes, name: str = "reviews", **fields: str) -> httpx.Response:
    return httpx.post(f"{base}/api/files", files={"file": (filename, body, "text/csv")}, data={"name": name, **fields}, timeout=30)


def test_upload_versions_and_read_back(live_server: str, ws: Workspace) -> None:
    first = upload(live_server, "reviews.csv", REVIEWS_CSV.encode(), tags="demo, en")
    assert first.status_code == 201, first.text
    meta = first.json()
    assert (meta["name"], meta["version"], meta["rows"], meta["columns"], meta["created"]) == ("reviews", 1, 2, ["review", "label"], True)
    assert meta["tags"] == ["demo", "en"] and meta["original_filename"] == "reviews.csv"

    same = upload(live_server, "renamed.csv", REVIEWS_CSV.encode())
    assert same.status_code == 200 and same.json()["created"] is False and same.json()["version"] == 1
    second = upload(live_server, "reviews.csv", (REVIEWS_CSV + "ok,neutral\n").encode())
    assert second.status_code == 201 and second.json()["version"] == 2

    listing = httpx.get(f"{live_server}/api/files").json()
    assert [(d["name"], d["latest"], len(d["versions"])) for d in listing] == [("reviews", 2, 2)]
    assert httpx.get(f"{live_server}/api/files/reviews").json()["latest"] == 2
    assert httpx.get(f"{live_server}/api/files/reviews/versions/1").json()["sha256"] == meta["sha256"]

    page = httpx.get(f"{live_server}/api/files/reviews/versions/2/preview", params={"offset": 1, "limit": 1}).json()
    assert page == {"columns": ["review", "label"], "rows": [{"review": "broke after a day", "label": "negative"}], "total": 3, "offset": 1, "limit": 1}

    download = httpx.get(f"{live_server}/api/files/reviews/versions/1/download")
    assert download.status_code == 200 and download.content == REVIEWS_CSV.encode()
    assert "reviews.csv" in download.headers["content-disposition"]


def test_missing_things_are_404_with_a_message(live_server: str) -> None:
    upload(live_server, "reviews.csv", REVIEWS_CSV.encode())
    missing = httpx.get(f"{live_server}/api/files/reviews/versions/7")
    assert missing.status_code == 404
    assert missing.json()["message"] == "dataset 'reviews' has no version 7; available versions: 1"
    assert httpx.get(f"{live_server}/api/files/nothing").json()["error"] == "NotFoundError"
    assert httpx.get(f"{live_server}/api/files/reviews/versions/1/preview", params={"limit": 5000}).status_code == 422


def test_delete_conflicts_name_the_jobs(live_server: str, ws: Workspace) -> None:
    upload(live_server, "reviews.csv", REVIEWS_CSV.encode())
    fake_job(ws, "sentiment", DatasetStore(ws).version("reviews", 1))
    refused = httpx.delete(f"{live_server}/api/files/reviews/versions/1")
    assert refused.status_code == 409 and "sentiment" in refused.json()["message"]
    assert httpx.delete(f"{live_server}/api/files/reviews").status_code == 409
    forced = httpx.delete(f"{live_server}/api/files/reviews", params={"force": "true"})
    assert forced.status_code == 200 and forced.json() == {"deleted": ["reviews@1"]}
    assert httpx.get(f"{live_server}/api/files").json() == []


def test_concurrent_uploads(live_server: str, ws: Workspace) -> None:
    bodies = [f"text\nupload {i}\n".encode() for i in range(6)]
    with ThreadPoolExecutor(12) as pool:
        different = pool.map(lambda b: upload(live_server, "many.csv", b, name="many"), bodies)
        same = pool.map(lambda _: upload(live_server, "one.csv", b"text\nsame\n", name="one"), range(6))
        different, same = list(different), list(same)
    assert sorted(r.json()["version"] for r in different) == [1, 2, 3, 4, 5, 6]
    assert all(r.status_code == 201 for r in different)
    assert sorted(r.status_code for r in same) == [200] * 5 + [201]
    assert {r.json()["version"] for r in same} == {1}
    store = DatasetStore(ws)
    for response, body in zip(different, bodies):
        assert store.path("many", response.json()["version"]).read_bytes() == body
    assert leftovers(ws) and not staging_dirs(ws)


def _big_csv() -> bytes:
    return b"text\n" + b"0123456789abcdef" * (1 << 16) + b"\n" + b"x\n" * (1 << 18)  # > 1.5 MiB


@pytest.mark.parametrize(
    ("filename", "body", "name", "status", "message"),
    [
        ("image.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "reviews", 422, "binary content at byte offset 8"),
        ("mixed.csv", b"a,b\n1," + bytes(range(128, 256)) * 3 + b"\n", "reviews", 422, "undecodable bytes at byte offset 6"),
        ("empty.csv", b"", "reviews", 422, "empty.csv is empty"),
        ("rows.csv", b"a,b\n1,2\n1,2,3\n", "reviews", 422, "row at line 3 has 3 fields, header has 2"),
        ("big.csv", _big_csv(), "reviews", 413, "larger than the"),
        ("../../evil.csv", REVIEWS_CSV.encode(), "reviews", 400, "not a path"),
        ("reviews.csv", REVIEWS_CSV.encode(), "../x", 400, "invalid dataset name"),
        ("reviews.csv", REVIEWS_CSV.encode(), "", 422, "'name'"),
        ("reviews.exe", REVIEWS_CSV.encode(), "reviews", 422, "not a supported dataset format"),
    ],
    ids=["binary", "undecodable", "empty", "bad-row", "too-large", "dotdot-filename", "dotdot-name", "no-name", "bad-extension"],
)
def test_malformed_uploads_leave_nothing_behind(
    live_server: str, ws: Workspace, filename: str, body: bytes, name: str, status: int, message: str
) -> None:
    response = upload(live_server, filename, body, name=name)
    assert response.status_code == status, response.text
    error = response.json()
    assert message in error["message"] and error["error"]
    assert leftovers(ws) == []
    assert not (ws.root.parent / "evil.csv").exists() and not (ws.root.parent / "x").exists()


def test_too_large_without_content_length_is_cut_while_streaming(live_server: str, ws: Workspace) -> None:
    boundary = "nctboundary"

    def body() -> Iterator[bytes]:
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nbig\r\n'.encode()
        yield f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.csv"\r\n\r\n'.encode()
        yield b"text\n"
        for _ in range(3):  # 1.5 MiB of rows, sent chunked
            yield b"some row\n" * (1 << 16)
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"content-type": f"multipart/form-data; boundary={boundary}"}
    try:
        response = httpx.post(f"{live_server}/api/files", content=body(), headers=headers, timeout=30)
        assert response.status_code == 413 and "larger than the upload limit of 1 MiB" in response.json()["message"]
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the server may close the connection before the client has sent everything
    assert leftovers(ws) == []


def test_not_multipart_and_missing_file(live_server: str, ws: Workspace) -> None:
    not_form = httpx.post(f"{live_server}/api/files", json={"name": "x"})
    assert not_form.status_code == 422 and not_form.json()["field"] == "file"
    no_file = httpx.post(f"{live_server}/api/files", data={"name": "x"}, files={"other": ("", b"", "text/plain")})
    assert no_file.status_code == 422
    garbage = httpx.post(
        f"{live_server}/api/files",
        content=b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.csv\"\r\n\r\ntext\nx\r\n--XX garbage",
        headers={"content-type": "multipart/form-data; boundary=b"},
    )
    assert garbage.status_code == 422 and garbage.json()["field"] == "file"
    assert leftovers(ws) == []


def test_binary_formats_and_split_survive_the_upload(live_server: str, tmp_path: Path) -> None:
    from openpyxl import Workbook

    wb = Workbook()
    wb.active.append(["prompt", "completion"])
    wb.active.append(["2+2", "4"])
    path = tmp_path / "math.xlsx"
    wb.save(path)
    sheet = httpx.post(f"{live_server}/api/files", files={"file": ("math.xlsx", path.read_bytes())}, data={"name": "math"})
    assert sheet.status_code == 201 and sheet.json()["format"] == "excel"
    assert httpx.get(f"{live_server}/api/files/math/versions/1/preview").json()["rows"] == [{"prompt": "2+2", "completion": "4"}]

    text = b"Chapter one.\n\nChapter two.\n"
    whole = upload(live_server, "book.txt", text, name="book", split="document")
    assert (whole.json()["rows"], whole.json()["text_split"]) == (1, "document")
    assert upload(live_server, "book.txt", text, name="book", split="pages").status_code == 422
