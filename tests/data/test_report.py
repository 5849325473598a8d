"""`data add` says, per training format, how many rows it can use and which it refuses and why.

The class of bug: a chat file whose `messages` is not a list, has unknown roles, or has an
empty answer was accepted without a word, and the user learned it at training time.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from nocodetune.cli.main import app
from nocodetune.data.store import DatasetStore
from nocodetune.workspace import Workspace

CHAT = [
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
    {"messages": "not a list"},
    {"messages": [{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]},
    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""}]},
    {"conversations": None, "messages": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},  # ShareGPT speakers
]


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_chat_rows_that_cannot_train_are_counted_and_named(store: DatasetStore, tmp_path: Path) -> None:
    result = store.add(_jsonl(tmp_path / "chat.jsonl", CHAT), "chat")
    [messages] = [r for r in result.report if r.format == "messages"]
    assert (messages.usable, messages.refused) == (2, 3)
    reasons = {g.message: g.rows for g in messages.reasons}
    assert reasons == {
        "'messages' is not a JSON list of messages": [2],
        "'messages' has a message with role 'robot' (known roles: ai, assistant, bot, chatgpt, gpt, human, model, system, user)": [3],
        "'messages' has an empty assistant message": [4],
    }


def test_every_format_the_columns_fit_is_reported(store: DatasetStore, tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("question,answer,text\nq1,a1,t1\nq2,,t2\n" + "".join(f"q{i},a{i},t{i}\n" for i in range(3, 2503)))
    report = {r.format: r for r in store.add(path, "qa").report}
    assert set(report) == {"prompt_completion", "text"}
    pc = report["prompt_completion"]
    assert pc.columns == {"prompt": "question", "completion": "answer"}
    assert (pc.usable, pc.refused, pc.reasons[0].rows) == (2501, 1, [2])
    assert (report["text"].usable, report["text"].refused) == (2502, 0)


def test_rows_past_the_first_chunk_keep_their_numbers(store: DatasetStore, tmp_path: Path) -> None:
    rows: list[dict[str, object]] = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(4500)]
    rows[3001]["completion"] = ""
    [pc] = store.add(_jsonl(tmp_path / "pc.jsonl", rows), "pc").report
    assert pc.reasons[0].rows == [3002] and pc.usable == 4499


def test_columns_that_fit_no_format_say_so(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "odd.csv"
    path.write_text("foo,bar\n1,2\n")
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "data", "add", str(path)], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "no training format fits the columns foo, bar" in result.output


def test_cli_and_api_show_the_report(ws: Workspace, live_server: str, tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "chat.jsonl", CHAT)
    result = CliRunner().invoke(app, ["--workspace", str(ws.root), "data", "add", str(path), "--name", "cli"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "messages (messages ← 'messages'): 2 rows usable, 3 refused: 'messages' is not a JSON list of messages (row 2);" in result.output
    response = httpx.post(f"{live_server}/api/files", files={"file": ("chat.jsonl", path.read_bytes())}, data={"name": "api"}, timeout=30)
    assert response.status_code == 201, response.text
    [entry] = response.json()["report"]
    assert (entry["format"], entry["usable"], entry["refused"]) == ("messages", 2, 3)
    again = httpx.post(f"{live_server}/api/files", files={"file": ("chat.jsonl", path.read_bytes())}, data={"name": "api"}, timeout=30)
    assert again.status_code == 200 and again.json()["report"] == response.json()["report"]  # same bytes: same report


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        # pandas DataFrame.to_json(orient="records"): missing values as null, one array
        ("pandas.json", '[{"prompt":"a","completion":"b"},{"prompt":"c","completion":null}]', {"prompt_completion": (1, 1)}),
        # ShareGPT JSON
        ("sharegpt.json", json.dumps([{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}]), {"messages": (1, 0)}),
        # OpenAI chat fine-tuning JSONL, with a system message
        (
            "openai.jsonl",
            json.dumps({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}) + "\n",
            {"messages": (1, 0)},
        ),
    ],
)
def test_files_other_tools_export(store: DatasetStore, tmp_path: Path, name: str, content: str, expected: dict[str, tuple[int, int]]) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    report = store.add(path, name.split(".")[0]).report
    assert {r.format: (r.usable, r.refused) for r in report} == expected


def test_large_files_are_streamed_for_the_report_with_the_same_result(store: DatasetStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Files over KEEP_ROWS_BYTES are read a second time, row by row, in the recorded encoding: same report."""
    from nocodetune.data import store as store_module

    rows = [{"prompt": f"şeker {i}", "completion": "" if i % 700 == 3 else f"c{i}"} for i in range(3000)]
    text = "prompt,completion\n" + "".join(f"{r['prompt']},{r['completion']}\n" for r in rows)
    (tmp_path / "a.csv").write_bytes(text.encode("cp1254"))
    kept = store.add(tmp_path / "a.csv", "kept").report
    monkeypatch.setattr(store_module, "KEEP_ROWS_BYTES", 0)
    streamed = store.add(tmp_path / "a.csv", "streamed").report
    assert streamed == kept
    assert kept[0].refused == 5 and kept[0].reasons[0].rows == [4, 704, 1404, 2104, 2804]
