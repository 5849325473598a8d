"""`nocodetune doctor`: checks, JSON output and exit codes."""

from __future__ import annotations

import json
from typing import Any, Callable

import pytest
from packaging.requirements import Requirement

from nocodetune import doctor
from nocodetune.workspace import Workspace


def test_healthy_machine_passes(ws: Workspace, cli: Callable[..., Any]) -> None:
    result = cli("doctor", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    names = {c["name"]: c for c in report["checks"]}
    assert report["ok"] is True
    for name in ("python", "transformers", "pydantic", "accelerator", "disk", "workspace", "network"):
        assert names[name]["status"] == "ok", names[name]
    assert "torch" in names["accelerator"]["detail"]


def test_failing_check_exits_1_and_lists_the_fix(ws: Workspace, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor, "check_python", lambda: doctor.Check(name="python", status="fail", detail="Python 3.8.0 is older than 3.10", fix="install Python 3.10 or newer"))
    result = cli("doctor", "--skip-torch")
    assert result.exit_code == 1
    assert "FAIL" in result.text and "install Python 3.10 or newer" in result.text
    assert json.loads(cli("doctor", "--json", "--skip-torch").output)["ok"] is False


def test_requirement_version_mismatch_and_missing_package() -> None:
    mismatch = doctor._check_requirement(Requirement("pydantic<1"))
    assert mismatch.status == "fail" and 'pip install "pydantic<1"' in (mismatch.fix or "")
    missing = doctor._check_requirement(Requirement("surely-not-installed-pkg>=1"))
    assert missing.status == "fail" and "not installed" in missing.detail
    assert doctor._check_requirement(Requirement("pydantic>=2")).status == "ok"


def test_every_declared_requirement_is_checked() -> None:
    import importlib.metadata

    declared = {Requirement(r).name for r in importlib.metadata.requires("nocodetune") or [] if "extra ==" not in r}
    checked = {c.name for c in doctor.check_requirements()}
    assert declared == checked


def test_missing_workspace_is_a_warning_with_the_init_command(tmp_path: Any) -> None:
    check = doctor.check_workspace(Workspace(tmp_path / "nowhere"))
    assert check.status == "warn" and "nocodetune init" in (check.fix or "")
