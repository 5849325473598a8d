"""`/v1/files` with the real SDK: an upload is a dataset version, checked like OpenAI checks it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import openai
import pytest

from nocodetune.data.store import DatasetStore
from nocodetune.errors import NotFoundError
from nocodetune.records.openai import find_file_record
from nocodetune.workspace import Workspace
from tests.openai.conftest import (
    chat_lines,
    check,
    dpo_lines,
    openai_api,
    sdk,
    write_jsonl,
)


def test_an_upload_is_a_dataset_version_and_every_file_route_answers(oa_ws: Workspace, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "sums.jsonl", chat_lines())
    with openai_api(oa_ws) as (url, _, _):
        client = sdk(url)
        with open(path, "rb") as fh:
            created = check(client.files.create(file=fh, purpose="fine-tune"))
        assert created.id.startswith("file-") and created.filename == "sums.jsonl" and created.purpose == "fine-tune"
        assert created.bytes == path.stat().st_size and created.status == "processed"

        meta = DatasetStore(oa_ws).version("sums", 1)  # what `data list` and the UI show
        assert meta.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() and meta.rows == 10 and "openai" in meta.tags
        assert find_file_record(oa_ws, created.id).ref == "sums@1"  # type: ignore[union-attr]

        assert check(client.files.retrieve(created.id)) == created
        assert client.files.content(created.id).read() == path.read_bytes()
        raw = httpx.get(f"{url}/v1/files").json()
        assert raw["object"] == "list" and raw["has_more"] is False and [f["id"] for f in raw["data"]] == [created.id]

        again = check(client.files.create(file=("sums.jsonl", path.read_bytes()), purpose="fine-tune"))
        assert again.id != created.id
        assert [check(f).id for f in client.files.list()] == [again.id, created.id]  # newest first
        assert [f.id for f in client.files.list(order="asc", limit=1)] == [created.id, again.id]  # the SDK pages with `after`
        assert len(DatasetStore(oa_ws).get("sums").versions) == 1  # same bytes, one version

        gone = check(client.files.delete(again.id))
        assert gone.id == again.id and gone.deleted is True
        with pytest.raises(openai.NotFoundError):
            client.files.retrieve(again.id)
        assert DatasetStore(oa_ws).version("sums", 1).sha256 == meta.sha256  # the other id still names it

        client.files.delete(created.id)
        with pytest.raises(NotFoundError):
            DatasetStore(oa_ws).get("sums")  # the upload made the version, so it goes with its last id
        assert client.files.list().data == []


def test_an_upload_of_a_dataset_the_user_already_had_never_deletes_it(oa_ws: Workspace, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mine.jsonl", chat_lines())
    DatasetStore(oa_ws).add(path, "mine")
    with openai_api(oa_ws) as (url, _, _):
        client = sdk(url)
        uploaded = client.files.create(file=("mine.jsonl", path.read_bytes()), purpose="fine-tune")
        client.files.delete(uploaded.id)
    assert DatasetStore(oa_ws).version("mine", 1).rows == 10


def test_openai_dpo_lines_are_accepted(oa_ws: Workspace, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "prefs.jsonl", dpo_lines())
    with openai_api(oa_ws) as (url, _, _):
        uploaded = check(sdk(url).files.create(file=path.open("rb"), purpose="fine-tune"))
    record = find_file_record(oa_ws, uploaded.id)
    assert record is not None and record.data_format == "preference" and record.ref == "prefs@1"


def _bad_uploads(tmp_path: Path) -> list[tuple[str, tuple[str, bytes], str, str, str]]:
    good = json.dumps(chat_lines(1)[0])
    no_answer = json.dumps({"messages": [{"role": "user", "content": "hi"}]})
    return [
        ("not JSON", ("bad.jsonl", f"{good}\nthis is not json\n".encode()), "fine-tune", "file", "line 2"),
        ("no assistant turn", ("bad.jsonl", f"{good}\n{no_answer}\n".encode()), "fine-tune", "file", "does not end with an assistant message"),
        ("completion format", ("old.jsonl", b'{"prompt": "a", "completion": "b"}\n'), "fine-tune", "file", "chat example"),
        ("not .jsonl", ("data.csv", b"prompt,completion\na,b\n"), "fine-tune", "file", ".jsonl"),
        ("empty", ("empty.jsonl", b""), "fine-tune", "file", "empty"),
        ("other purpose", ("sums.jsonl", f"{good}\n".encode()), "assistants", "purpose", "fine-tune"),
    ]


def test_bad_files_get_openai_400s_that_the_sdk_does_not_retry_and_nothing_is_kept(oa_ws: Workspace, tmp_path: Path) -> None:
    before = DatasetStore(oa_ws).names()
    with openai_api(oa_ws) as (url, _, counts):
        client = sdk(url)  # default max_retries=2: a retry would show in the counts
        for what, upload, purpose, param, words in _bad_uploads(tmp_path):
            seen = counts[("POST", "/v1/files")]
            with pytest.raises(openai.BadRequestError) as err:
                client.files.create(file=upload, purpose=purpose)  # type: ignore[arg-type]
            assert counts[("POST", "/v1/files")] == seen + 1, f"{what}: the SDK retried"
            assert err.value.response.headers["x-should-retry"] == "false", what
            body = err.value.body
            assert isinstance(body, dict) and set(body) == {"message", "type", "param", "code"}, what
            assert body["type"] == "invalid_request_error" and body["param"] == param, (what, body)
            assert words in body["message"], (what, body["message"])
        assert client.files.list().data == []
    assert DatasetStore(oa_ws).names() == before
    assert not [p for p in oa_ws.tmp.iterdir() if p.name.startswith("dataset-")]  # no staging left behind


def test_an_unknown_file_id_is_a_404_in_openai_shape(oa_ws: Workspace) -> None:
    with openai_api(oa_ws) as (url, _, _):
        with pytest.raises(openai.NotFoundError) as err:
            sdk(url).files.retrieve("file-000000000000000000000000")
        assert err.value.body["code"] == "not_found"  # type: ignore[index]
