"""Creating jobs: inheritance, resolved.json, refusals, atomicity, clone and delete."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nocodetune.records.job import ResolvedJob
from nocodetune.errors import ConfigError, ConflictError, NotFoundError, UnsafeNameError
from nocodetune.jobs.create import clone_job, create_job, delete_job, plan_job
from nocodetune.jobs.spec import JobSpec
from nocodetune.workspace import Workspace
from tests.config.conftest import job_folders, staging_leftovers


def test_create_writes_the_job_folder(ws: Workspace, dataset: str) -> None:
    create_job(ws, JobSpec(name="j1", base="lora_train", dataset="dates", set={"training.learning_rate": 1e-4, "lora.r": 8}))
    paths = ws.job("j1")
    assert paths.outputs.is_dir() and not any(paths.outputs.iterdir())
    assert paths.logs.is_dir() and not any(paths.logs.iterdir())
    snapshot = paths.files / "dates@1" / "dates.jsonl"
    assert snapshot.read_bytes() == (ws.dataset_dir("dates") / "v1" / "dates.jsonl").read_bytes()

    asked = yaml.safe_load(paths.job_yaml.read_text())
    assert asked == {"base": "lora_train", "training": {"learning_rate": 1e-4}, "lora": {"r": 8}, "dataset": {"ref": "dates"}}

    resolved = json.loads(paths.resolved_json.read_text())
    config = resolved["config"]
    assert config["method"] == "lora"
    assert config["training"]["learning_rate"] == 1e-4
    assert config["lora"]["r"] == 8 and config["lora"]["alpha"] == 32  # alpha from the base
    assert config["dataset"]["ref"] == "dates@1"  # "latest" pinned to the version used
    assert resolved["datasets"] == [
        {
            "name": "dates",
            "version": 1,
            "sha256": json.loads((ws.dataset_dir("dates") / "v1" / "meta.json").read_text())["sha256"],
            "file": "files/dates@1/dates.jsonl",
            "format": "jsonl",
            "rows": 10,
            "columns": ["prompt", "completion"],
        }
    ]
    assert resolved["lineage"]["base"] == "lora_train" and resolved["lineage"]["parent"] is None
    assert resolved["sources"]["training.learning_rate"] == "job"
    assert resolved["sources"]["lora.alpha"] == "base:lora_train"
    assert resolved["sources"]["training.seed"] == "schema"
    assert resolved["versions"]["transformers"] and resolved["versions"]["nocodetune"]


def test_base_chain_and_sources(ws: Workspace, dataset: str) -> None:
    job = plan_job(ws, JobSpec(name="q", base="qlora_train", dataset=dataset))
    assert job.lineage.base_chain == ["lora_train", "qlora_train"]
    assert job.config.method == "qlora" and job.sources["method"] == "base:qlora_train"
    assert job.config.training.learning_rate == 2e-4 and job.sources["training.learning_rate"] == "base:lora_train"
    assert not ws.job("q").root.exists()  # planning writes nothing


def test_child_inherits_from_parent_and_its_base(ws: Workspace, dataset: str) -> None:
    create_job(ws, JobSpec(name="parent", base="full_train", dataset=dataset, set={"training.learning_rate": 3e-5, "training.max_length": 128}))
    child = create_job(ws, JobSpec(name="child", parent="parent", set={"training.num_train_epochs": 1}))
    assert child.lineage.base == "full_train"  # no base given: the parent's base
    assert child.lineage.parent_chain == ["parent"]
    assert child.lineage.parent_dir == str(ws.job("parent").root)
    assert child.config.method == "full"
    assert child.config.training.learning_rate == 3e-5 and child.sources["training.learning_rate"] == "parent:parent"
    assert child.config.training.num_train_epochs == 1 and child.sources["training.num_train_epochs"] == "job"
    assert child.config.dataset.ref == "dates@1" and child.sources["dataset.ref"] == "parent:parent"

    grandchild = create_job(ws, JobSpec(name="grandchild", parent="child", base="lora_train"))
    assert grandchild.lineage.parent_chain == ["parent", "child"]
    assert grandchild.config.method == "lora"  # the named base wins over the parent's base
    assert grandchild.config.training.max_length == 128 and grandchild.sources["training.max_length"] == "parent:parent"


def test_base_cycle_is_refused(ws: Workspace) -> None:
    for name, other in (("a", "b"), ("b", "a")):
        (ws.archive / name).mkdir()
        (ws.archive / name / "job.yaml").write_text(f"base: {other}\n")
    with pytest.raises(ConfigError, match="cycle: a -> b -> a"):
        plan_job(ws, JobSpec(name="x", base="a"))


def test_bad_key_in_a_base_names_the_base_file(ws: Workspace) -> None:
    (ws.archive / "broken").mkdir()
    (ws.archive / "broken" / "job.yaml").write_text("training:\n  lerning_rate: 0.1\n")
    with pytest.raises(ConfigError) as err:
        plan_job(ws, JobSpec(name="x", base="broken"))
    assert "archive/broken/job.yaml" in err.value.message and "did you mean training.learning_rate?" in err.value.message


def test_unknown_key_is_refused_with_suggestion(ws: Workspace, dataset: str) -> None:
    with pytest.raises(ConfigError, match=r"did you mean lora\.alpha\?"):
        create_job(ws, JobSpec(name="j", dataset=dataset, set={"lora.alhpa": 8}))
    assert "j" not in job_folders(ws)


def test_bad_value_names_path_and_value(ws: Workspace, dataset: str) -> None:
    with pytest.raises(ConfigError) as err:
        create_job(ws, JobSpec(name="j", dataset=dataset, set={"training.per_device_train_batch_size": -2}))
    assert err.value.field == "training.per_device_train_batch_size"
    assert "= -2" in err.value.message
    assert "j" not in job_folders(ws)


def test_missing_base_lists_the_bases(ws: Workspace) -> None:
    with pytest.raises(NotFoundError) as err:
        create_job(ws, JobSpec(name="j", base="lora"))
    assert err.value.hint and "lora_train" in err.value.hint and "full_train" in err.value.hint


def test_missing_dataset_version_is_refused(ws: Workspace, dataset: str) -> None:
    with pytest.raises(NotFoundError) as err:
        create_job(ws, JobSpec(name="j", dataset="dates@7"))
    assert "7" in str(err.value)
    with pytest.raises(NotFoundError):
        create_job(ws, JobSpec(name="j", dataset="nosuchdata"))
    assert "j" not in job_folders(ws) and staging_leftovers(ws) == []


def test_missing_parent_lists_existing_jobs(ws: Workspace, dataset: str) -> None:
    with pytest.raises(NotFoundError) as err:
        create_job(ws, JobSpec(name="j", parent="ghost"))
    assert err.value.field == "parent" and "demo_job" in (err.value.hint or "")


def test_duplicate_name_is_refused_and_keeps_the_first(ws: Workspace, dataset: str) -> None:
    create_job(ws, JobSpec(name="j", dataset=dataset, set={"lora.r": 4}))
    with pytest.raises(ConflictError):
        create_job(ws, JobSpec(name="j", dataset=dataset, set={"lora.r": 64}))
    assert ResolvedJob.read(ws.job("j").resolved_json).config.lora.r == 4


@pytest.mark.parametrize("name", ["../x", "/tmp/evil", "a/b", "..", ".hidden", ""])
def test_names_that_leave_the_workspace_are_refused(ws: Workspace, dataset: str, name: str) -> None:
    before = sorted(p.name for p in ws.root.parent.iterdir())
    with pytest.raises(UnsafeNameError):
        create_job(ws, JobSpec(name=name, dataset=dataset))
    with pytest.raises((UnsafeNameError, ConfigError, NotFoundError)):
        create_job(ws, JobSpec(name="ok", dataset=f"{name}@1"))
    with pytest.raises(UnsafeNameError):
        create_job(ws, JobSpec(name="ok", parent=name or "..", base=None))
    assert sorted(p.name for p in ws.root.parent.iterdir()) == before
    assert "ok" not in job_folders(ws) and not Path("/tmp/evil").exists()


def test_failure_mid_create_leaves_nothing(ws: Workspace, dataset: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from nocodetune.data.store import DatasetStore

    def broken_snapshot(self: DatasetStore, name: str, version: int, dest_dir: Path) -> Path:
        (Path(dest_dir) / f"{name}@{version}").mkdir(parents=True)  # half-copied, then the disk fills up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DatasetStore, "snapshot_into", broken_snapshot)
    with pytest.raises(OSError):
        create_job(ws, JobSpec(name="half", dataset=dataset))
    assert "half" not in job_folders(ws)
    assert staging_leftovers(ws) == []


def test_clone_keeps_the_dataset_version_and_applies_changes(ws: Workspace, dataset: str, tmp_path: Path) -> None:
    from nocodetune.data.store import DatasetStore
    from tests.config.conftest import write_jsonl

    create_job(ws, JobSpec(name="src", dataset="dates", set={"lora.r": 4}))
    DatasetStore(ws).add(write_jsonl(tmp_path / "dates.jsonl", [{"prompt": "p", "completion": "c"}] * 3), "dates")  # v2
    copy = clone_job(ws, "src", "copy", set_values={"training.learning_rate": 5e-5})
    assert copy.config.dataset.ref == "dates@1"
    assert copy.config.lora.r == 4 and copy.config.training.learning_rate == 5e-5
    assert (ws.job("copy").files / "dates@1").is_dir()
    with pytest.raises(NotFoundError):
        clone_job(ws, "nope", "copy2")


def test_delete_refuses_parents_unless_forced(ws: Workspace, dataset: str) -> None:
    create_job(ws, JobSpec(name="p", dataset=dataset))
    create_job(ws, JobSpec(name="c", parent="p"))
    with pytest.raises(ConflictError, match="parent of c"):
        delete_job(ws, "p")
    assert ws.job("p").root.is_dir()
    assert delete_job(ws, "p", force=True) == ["c"]
    assert not ws.job("p").root.exists() and ws.job("c").root.is_dir()
    assert staging_leftovers(ws) == []
    with pytest.raises(NotFoundError):
        delete_job(ws, "p")


def test_delete_refuses_a_running_job(ws: Workspace, dataset: str) -> None:
    create_job(ws, JobSpec(name="busy", dataset=dataset))
    lock = ws.job("busy").lock_file
    holder = subprocess.Popen(
        [sys.executable, "-c", f"from filelock import FileLock; import sys, time\nl = FileLock({str(lock)!r}); l.acquire(); print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ConflictError, match="running"):
            delete_job(ws, "busy")
        assert ws.job("busy").root.is_dir()
    finally:
        holder.communicate("", timeout=30)
    delete_job(ws, "busy")
    assert not ws.job("busy").root.exists()
