"""`nocodetune data ...` as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import Result
from typer.testing import CliRunner

from nocodetune.cli.main import app
from nocodetune.data.store import DatasetStore
from nocodetune.errors import ConflictError, NotFoundError, UnsafeNameError
from nocodetune.workspace import Workspace
from tests.data.conftest import REVIEWS_CSV, fake_job

runner = CliRunner()


def data(ws: Workspace, *args: str) -> Result:
    return runner.invoke(app, ["--workspace", str(ws.root), "data", *args], env={"COLUMNS": "200"})


def test_add_then_same_content_then_new_version(ws: Workspace, reviews_csv: Path) -> None:
    result = data(ws, "add", str(reviews_csv), "--name", "reviews", "--tag", "demo")
    assert result.exit_code == 0, result.output
    assert "added reviews@1: 2 rows, columns: review, label, format csv" in result.output
    again = data(ws, "add", str(reviews_csv), "--name", "reviews")
    assert again.exit_code == 0 and "no new version: same content as reviews@1" in again.output
    reviews_csv.write_text(REVIEWS_CSV + "fine,neutral\n")
    assert "added reviews@2: 3 rows" in data(ws, "add", str(reviews_csv), "-n", "reviews").output


def test_add_defaults_the_name_to_the_file_stem(ws: Workspace, reviews_csv: Path) -> None:
    assert "added reviews@1" in data(ws, "add", str(reviews_csv)).output


def test_list_show_versions(ws: Workspace, reviews_csv: Path) -> None:
    data(ws, "add", str(reviews_csv), "--name", "reviews", "--tag", "demo", "--tag", "en")
    listing = data(ws, "list")
    assert listing.exit_code == 0
    assert "reviews" in listing.output and "demo, en" in listing.output and "v1" in listing.output
    show = data(ws, "show", "reviews", "--rows", "1")
    assert show.exit_code == 0, show.output
    assert "reviews@1" in show.output and "great, works well" in show.output
    assert "broke after a day" not in show.output and "first 1 of 2 rows" in show.output
    versions = data(ws, "versions", "reviews")
    assert "v1" in versions.output and DatasetStore(ws).version("reviews", 1).sha256[:12] in versions.output


def test_list_when_empty(ws: Workspace) -> None:
    assert "no datasets yet" in data(ws, "list").output


def test_delete_refused_while_used_then_forced(ws: Workspace, reviews_csv: Path) -> None:
    data(ws, "add", str(reviews_csv), "--name", "reviews")
    fake_job(ws, "sentiment", DatasetStore(ws).version("reviews", 1))
    refused = data(ws, "delete", "reviews@1")
    assert isinstance(refused.exception, ConflictError) and "sentiment" in str(refused.exception)
    assert (ws.files / "reviews" / "v1").is_dir()
    forced = data(ws, "delete", "reviews", "--force")
    assert forced.exit_code == 0 and "deleted dataset reviews (1 version)" in forced.output
    assert not (ws.files / "reviews").exists()


def test_errors_are_nocodetune_errors(ws: Workspace, reviews_csv: Path) -> None:
    assert isinstance(data(ws, "show", "nope").exception, NotFoundError)
    assert isinstance(data(ws, "add", str(reviews_csv), "--name", "../x").exception, UnsafeNameError)
    assert list(ws.files.iterdir()) == []


@pytest.mark.timeout(120)
def test_console_renders_a_bad_row_and_exits_2(ws: Workspace, tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n3\n")
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run(
        [sys.executable, "-m", "nocodetune", "--workspace", str(ws.root), "data", "add", str(bad), "--name", "bad"],
        capture_output=True,
        text=True,
        env=env,
        timeout=100,
    )
    assert proc.returncode == 2
    assert "bad.csv: row at line 3 has 1 field, header has 2" in proc.stderr
    assert list(ws.files.iterdir()) == []


def test_add_reports_the_detected_encoding_and_takes_another(ws: Workspace, tmp_path: Path) -> None:
    path = tmp_path / "menu.csv"
    path.write_bytes("text\ncafé crème\n".encode("cp1252"))
    added = data(ws, "add", str(path))
    assert added.exit_code == 0, added.output
    assert "format csv, cp1252 (detected)" in added.output
    assert "also plausible: cp1250 ('crème' would read 'crčme')" in added.output
    assert "also plausible: cp1250" in data(ws, "show", "menu").output  # the note stays with the version
    path.write_bytes(path.read_bytes() + b"\n")
    chosen = data(ws, "add", str(path), "--encoding", "cp1250")
    assert chosen.exit_code == 0 and "menu@2" in chosen.output and "cp1250 (as given)" in chosen.output
    assert "café crčme" in data(ws, "show", "menu@2").output
