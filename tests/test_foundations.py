"""The foundations every layer relies on: the network policy, events.jsonl, safe names."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from nocodetune.errors import UnsafeNameError
from nocodetune.records.events import EventWriter, read_events
from nocodetune.settings import Settings, apply_network_policy
from nocodetune.workspace import Workspace, check_name


def test_network_policy_forces_hub_offline_unless_the_user_opts_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")  # a stray shell setting must not re-enable downloads
    monkeypatch.delenv("HF_HUB_DISABLE_TELEMETRY", raising=False)
    apply_network_policy(Settings(allow_hub_downloads=False))
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    apply_network_policy(Settings(allow_hub_downloads=True))
    assert os.environ["HF_HUB_OFFLINE"] == "0"
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1"  # telemetry stays off either way


def test_event_reader_takes_only_complete_lines_and_resumes_from_its_offset(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    writer = EventWriter(path, run=1)
    writer.emit("started", total_steps=10)
    writer.emit("log", step=1, loss=2.5)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"type": "log", "step": 2})[:-3])  # a line still being written

    events, offset = read_events(path)
    assert [(e.type, e.run) for e in events] == [("started", 1), ("log", 1)]
    assert events[1].data()["loss"] == 2.5

    with open(path, "a", encoding="utf-8") as fh:
        fh.write('2}\n')  # the writer finishes the line
    more, _ = read_events(path, offset)
    assert [(e.type, e.data()["step"]) for e in more] == [("log", 2)]


@pytest.mark.parametrize("name", ["../x", "/abs", "a/b", "..", "", ".hidden", "x" * 101])
def test_names_that_could_leave_the_workspace_are_refused(name: str) -> None:
    with pytest.raises(UnsafeNameError):
        check_name(name, "job name")


def test_paths_outside_the_workspace_are_refused(tmp_path: Path) -> None:
    ws = Workspace(tmp_path / "ws")
    ws.create_layout()
    assert ws.inside("jobs/a") == ws.jobs / "a"
    with pytest.raises(UnsafeNameError):
        ws.inside("../elsewhere")
    with pytest.raises(UnsafeNameError):
        ws.inside("/etc/passwd")
