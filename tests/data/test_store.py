"""The versioned store: versions on disk, same bytes → same version, safe names, locks, deletes."""

from __future__ import annotations

import hashlib
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from nocodetune.records.job import ResolvedJob
from nocodetune.data.readers import read_snapshot
from nocodetune.data.store import DatasetStore
from nocodetune.errors import ConflictError, DataError, NotFoundError, UnsafeNameError
from nocodetune.workspace import Workspace
from tests.data.conftest import REVIEWS_CSV, fake_job, leftovers, staging_dirs


def test_add_writes_version_folder_and_meta(ws: Workspace, store: DatasetStore, reviews_csv: Path) -> None:
    result = store.add(reviews_csv, "reviews", tags=["demo", " demo ", "en"])
    assert result.created
    meta = result.meta
    version_dir = ws.files / "reviews" / "v1"
    assert sorted(p.name for p in version_dir.iterdir()) == ["meta.json", "reviews.csv"]
    assert (version_dir / "reviews.csv").read_bytes() == reviews_csv.read_bytes()
    on_disk = json.loads((version_dir / "meta.json").read_text())
    assert on_disk["sha256"] == hashlib.sha256(reviews_csv.read_bytes()).hexdigest() == meta.sha256
    assert (meta.name, meta.version, meta.rows, meta.columns, meta.format) == ("reviews", 1, 2, ["review", "label"], "csv")
    assert meta.size_bytes == reviews_csv.stat().st_size and meta.original_filename == "reviews.csv"
    assert meta.tags == ["demo", "en"]
    assert sorted(leftovers(ws)) == ["files/reviews", "files/reviews/.last_version", "files/reviews/v1", "files/reviews/v1/meta.json", "files/reviews/v1/reviews.csv"]


def test_same_bytes_give_no_new_version_changed_bytes_do(store: DatasetStore, reviews_csv: Path, tmp_path: Path) -> None:
    first = store.add(reviews_csv, "reviews")
    copy = tmp_path / "other-name.csv"
    copy.write_bytes(reviews_csv.read_bytes())
    again = store.add(copy, "reviews")
    assert not again.created and again.meta == first.meta
    reviews_csv.write_text(REVIEWS_CSV + "meh,neutral\n")
    second = store.add(reviews_csv, "reviews")
    assert second.created and second.meta.version == 2 and second.meta.rows == 3
    assert [m.version for m in store.get("reviews").versions] == [1, 2]
    assert store.parse_ref("reviews") == ("reviews", 2)
    assert store.parse_ref("reviews@1") == ("reviews", 1)


def test_same_bytes_in_another_dataset_is_a_new_dataset(store: DatasetStore, reviews_csv: Path) -> None:
    store.add(reviews_csv, "reviews")
    assert store.add(reviews_csv, "reviews-copy").created
    assert [d.name for d in store.list()] == ["reviews", "reviews-copy"]


def test_parse_ref_errors_name_what_exists(store: DatasetStore, reviews_csv: Path) -> None:
    store.add(reviews_csv, "reviews")
    with pytest.raises(NotFoundError, match=r"dataset 'reviews' has no version 9; available versions: 1"):
        store.parse_ref("reviews@9")
    with pytest.raises(NotFoundError, match="no dataset named 'missing'") as info:
        store.parse_ref("missing")
    assert "reviews" in (info.value.hint or "")
    with pytest.raises(DataError, match="name@version"):
        store.parse_ref("reviews@latest")


def test_add_from_stream(store: DatasetStore) -> None:
    meta = store.add(io.BytesIO(b'{"text": "a"}\n{"text": "b"}\n'), "notes", original_filename="notes.jsonl").meta
    assert (meta.format, meta.rows, meta.file) == ("jsonl", 2, "notes.jsonl")


@pytest.mark.parametrize(
    ("original", "stored"),
    [("My Reviews (2024).csv", "My_Reviews_2024.csv"), ("meta.json", "data.json"), ("résumé.JSONL", "r_sum.jsonl"), ("---.csv", "data.csv")],
)
def test_stored_file_name_is_sanitized(store: DatasetStore, original: str, stored: str) -> None:
    body = b'[{"a": 1}]' if original.lower().endswith("json") else (b'{"a": 1}\n' if "JSONL" in original else b"a\n1\n")
    assert store.add(io.BytesIO(body), "d", original_filename=original).meta.file == stored


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "..", "", ".hidden", "x" * 101])
def test_unsafe_dataset_names_are_refused(ws: Workspace, store: DatasetStore, reviews_csv: Path, name: str) -> None:
    with pytest.raises(UnsafeNameError):
        store.add(reviews_csv, name)
    assert leftovers(ws) == []
    assert not (ws.root.parent / "x").exists()


@pytest.mark.parametrize("original", ["../evil.csv", "sub/evil.csv", "..\\evil.csv", "/etc/evil.csv"])
def test_path_like_original_file_names_are_refused(ws: Workspace, store: DatasetStore, original: str) -> None:
    with pytest.raises(UnsafeNameError, match="not a path"):
        store.add(io.BytesIO(b"a\n1\n"), "d", original_filename=original)
    assert leftovers(ws) == []


def test_unreadable_file_changes_nothing(ws: Workspace, store: DatasetStore, reviews_csv: Path, tmp_path: Path) -> None:
    store.add(reviews_csv, "reviews")
    bad = tmp_path / "bad.csv"
    bad.write_text("review,label\nonly one field\n")
    before = sorted(str(p) for p in ws.files.rglob("*"))
    with pytest.raises(DataError, match="line 2 has 1 field, header has 2") as info:
        store.add(bad, "reviews")
    assert info.value.file == "bad.csv"
    assert sorted(str(p) for p in ws.files.rglob("*")) == before
    assert not staging_dirs(ws)
    with pytest.raises(DataError):
        store.add(bad, "fresh")
    assert not (ws.files / "fresh").exists()


def test_concurrent_adds_of_different_files_get_distinct_versions(ws: Workspace, store: DatasetStore) -> None:
    bodies = [f"text\nexample number {i}\n".encode() for i in range(8)]
    barrier = threading.Barrier(len(bodies))

    def add(body: bytes) -> int:
        barrier.wait()
        return DatasetStore(ws).add(io.BytesIO(body), "race", original_filename="race.csv").meta.version

    with ThreadPoolExecutor(len(bodies)) as pool:
        versions = list(pool.map(add, bodies))
    assert sorted(versions) == list(range(1, 9))
    for body, version in zip(bodies, versions):
        assert store.path("race", version).read_bytes() == body
        assert store.version("race", version).sha256 == hashlib.sha256(body).hexdigest()
    assert not staging_dirs(ws)


def test_concurrent_adds_of_the_same_file_make_one_version(ws: Workspace, store: DatasetStore) -> None:
    barrier = threading.Barrier(6)

    def add(_: int) -> tuple[int, bool]:
        barrier.wait()
        result = DatasetStore(ws).add(io.BytesIO(b"text\nsame\n"), "same", original_filename="same.csv")
        return result.meta.version, result.created

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(add, range(6)))
    assert {version for version, _ in results} == {1}
    assert sum(created for _, created in results) == 1
    assert [m.version for m in store.get("same").versions] == [1]


def test_delete_is_refused_while_a_job_uses_the_version(ws: Workspace, store: DatasetStore, reviews_csv: Path) -> None:
    v1 = store.add(reviews_csv, "reviews").meta
    reviews_csv.write_text(REVIEWS_CSV + "x,y\n")
    store.add(reviews_csv, "reviews")
    job_dir = fake_job(ws, "sentiment", v1, store=store)
    snapshot = job_dir / "files" / "reviews@1" / "reviews.csv"
    with pytest.raises(ConflictError, match="reviews@1 is used by jobs: sentiment"):
        store.delete_version("reviews", 1)
    with pytest.raises(ConflictError, match="dataset 'reviews' is used by jobs: sentiment"):
        store.delete("reviews")
    assert store.delete_version("reviews", 2).version == 2  # unused: no force needed
    assert store.delete_version("reviews", 1, force=True).version == 1
    assert not (ws.files / "reviews").exists()
    assert snapshot.read_text() == REVIEWS_CSV  # the job's own copy is never touched


def test_deleted_version_numbers_are_not_reused(store: DatasetStore, reviews_csv: Path) -> None:
    store.add(reviews_csv, "reviews")
    reviews_csv.write_text(REVIEWS_CSV + "x,y\n")
    store.add(reviews_csv, "reviews")
    store.delete_version("reviews", 2)
    reviews_csv.write_text(REVIEWS_CSV + "z,w\n")
    assert store.add(reviews_csv, "reviews").meta.version == 3


def test_delete_whole_dataset_with_force(ws: Workspace, store: DatasetStore, reviews_csv: Path) -> None:
    meta = store.add(reviews_csv, "reviews").meta
    fake_job(ws, "job-a", meta)
    assert [m.ref for m in store.delete("reviews", force=True)] == ["reviews@1"]
    assert store.list() == []
    with pytest.raises(NotFoundError):
        store.get("reviews")


def test_snapshot_into_a_job_folder(ws: Workspace, store: DatasetStore, reviews_csv: Path, tmp_path: Path) -> None:
    meta = store.add(reviews_csv, "reviews").meta
    files = tmp_path / "job" / "files"
    path = store.snapshot_into("reviews", 1, files)
    assert path == files / "reviews@1" / "reviews.csv"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == meta.sha256
    assert read_snapshot(path).rows == store.read("reviews", 1).rows
    entry = meta.snapshot("files/reviews@1/reviews.csv")
    assert (entry.name, entry.version, entry.rows, entry.columns) == ("reviews", 1, 2, ["review", "label"])
    assert ResolvedJob.model_validate_json(fake_job(ws, "j", meta).joinpath("resolved.json").read_text()).datasets[0] == entry


def test_preview_pages(store: DatasetStore, tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"p{i}", **({"extra": i} if i == 0 else {})}) + "\n" for i in range(30)))
    store.add(path, "chat")
    page = store.preview("chat", 1, offset=28, limit=5)
    assert (page.total, page.offset, page.limit, page.columns) == (30, 28, 5, ["prompt", "extra"])
    assert page.rows == [{"prompt": "p28", "extra": None}, {"prompt": "p29", "extra": None}]
    with pytest.raises(DataError, match="limit"):
        store.preview("chat", 1, limit=5000)


def test_document_split_is_remembered(store: DatasetStore, tmp_path: Path) -> None:
    path = tmp_path / "story.txt"
    path.write_text("Once upon a time.\n\nThe end.\n")
    meta = store.add(path, "story", split="document").meta
    assert (meta.rows, meta.text_split) == (1, "document")
    assert store.preview("story", 1).rows == [{"text": "Once upon a time.\n\nThe end."}]
    assert store.add(path, "story-paras").meta.rows == 2


def test_staging_left_by_a_crash_is_cleaned_up(ws: Workspace, store: DatasetStore, reviews_csv: Path) -> None:
    import os

    crashed = ws.new_tmp_dir("dataset-")
    (crashed / "half.csv").write_bytes(b"text\nhalf")
    recent = ws.new_tmp_dir("dataset-")
    day_ago = crashed.stat().st_mtime - 2 * 24 * 3600
    os.utime(crashed, (day_ago, day_ago))
    store.add(reviews_csv, "reviews")
    assert staging_dirs(ws) == [recent.name]
