"""The workspace on disk: where everything lives, and which names are safe.

Users see this layout (it is the seed's), so paths are built here and nowhere else.
Every name that reaches a path (job, dataset, base, server) goes through `check_name`,
which is what keeps `../x` and absolute paths out of the workspace.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from nocodetune.errors import NocodetuneError, UnsafeNameError

DEFAULT_DIRNAME = "ModelTrainingWorkspace"
MARKER = "nocodetune.db"  # a folder holding this (or the four dirs below) is a workspace
LAYOUT_DIRS = ("archive", "files", "jobs", "logs")
# A job folder's (and a base job's) two config files; records.job reads and writes them.
JOB_YAML = "job.yaml"
RESOLVED_JSON = "resolved.json"
# What makes a folder a workspace: git, zip tools and some sync tools drop empty folders
# (a fresh `logs/`), so those are put back on open rather than refusing the workspace.
CORE_DIRS = ("files", "jobs")

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def check_name(name: str, kind: str = "name") -> str:
    """Refuse a name that is empty, too long, hidden, or could act as a path."""
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in {".", ".."} or ".." in name:
        raise UnsafeNameError(
            f"invalid {kind} {name!r}: use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit",
            field=kind,
            hint="names become folder names inside the workspace, so '/', '..' and absolute paths are refused",
        )
    return name


def resolve_within(root: Path, path: Path | str, what: str) -> Path:
    """`path` (relative to `root`, or absolute) resolved, links included; refused if it leaves `root`."""
    if "\x00" in str(path):
        raise UnsafeNameError(f"path {str(path)!r} contains a NUL byte", file=str(path).replace("\x00", "\\0"))
    root = root.resolve()
    p = Path(path)
    try:
        resolved = (p if p.is_absolute() else root / p).resolve()
    except (OSError, RuntimeError) as exc:  # a symlink loop, a name too long
        raise UnsafeNameError(f"path {str(path)!r} cannot be resolved: {exc}", file=str(path)) from None
    if resolved != root and root not in resolved.parents:
        raise UnsafeNameError(f"path {str(path)!r} is outside {what}", file=str(path))
    return resolved


@dataclass(frozen=True)
class JobPaths:
    """Every file of one job folder. `nocodetune.training` reads only these."""

    root: Path

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def job_yaml(self) -> Path:
        return self.root / JOB_YAML

    @property
    def resolved_json(self) -> Path:
        return self.root / RESOLVED_JSON

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def outputs(self) -> Path:
        return self.root / "outputs"

    @property
    def checkpoints(self) -> Path:
        return self.outputs / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.outputs / "model"

    @property
    def adapter_dir(self) -> Path:
        return self.outputs / "adapter"

    @property
    def merged_dir(self) -> Path:
        return self.outputs / "merged"

    @property
    def metrics_json(self) -> Path:
        return self.outputs / "metrics.json"

    @property
    def samples_jsonl(self) -> Path:
        return self.outputs / "samples.jsonl"

    @property
    def loss_png(self) -> Path:
        return self.outputs / "loss.png"

    @property
    def model_card(self) -> Path:
        return self.outputs / "README.md"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def events(self) -> Path:
        return self.logs / "events.jsonl"

    @property
    def lock_file(self) -> Path:
        return self.root / ".run.lock"

    def run_log(self, n: int) -> Path:
        return self.logs / f"run-{n}.log"

    def run_logs(self) -> list[Path]:
        logs = list(self.logs.glob("run-*.log")) if self.logs.is_dir() else []
        return sorted(logs, key=lambda p: int(p.stem.split("-")[1]) if p.stem.split("-")[1].isdigit() else 0)


class Workspace:
    """A NoCodeTune workspace folder."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).expanduser().resolve()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # -- layout -----------------------------------------------------------------
    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def files(self) -> Path:
        return self.root / "files"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def db_path(self) -> Path:
        return self.root / MARKER

    @property
    def tmp(self) -> Path:
        """Staging area on the same filesystem, so that a final rename is atomic."""
        return self.root / ".tmp"

    def exists(self) -> bool:
        return self.root.is_dir() and all((self.root / d).is_dir() for d in CORE_DIRS)

    def require(self) -> "Workspace":
        if not self.exists():
            raise NocodetuneError(
                f"no NoCodeTune workspace at {self.root}",
                file=str(self.root),
                hint="create one with `nocodetune init PATH`, or point to one with --workspace or NOCODETUNE_WORKSPACE",
            )
        self.create_layout()
        return self

    def create_layout(self) -> list[Path]:
        """Create the missing layout folders; return those that were created."""
        created = []
        for d in (self.root, *(self.root / n for n in LAYOUT_DIRS), self.tmp):
            if not d.is_dir():
                d.mkdir(parents=True, exist_ok=True)
                created.append(d)
        return created

    # -- named things -----------------------------------------------------------
    def job(self, name: str) -> JobPaths:
        return JobPaths(self.jobs / check_name(name, "job name"))

    def base_dir(self, name: str) -> Path:
        return self.archive / check_name(name, "base job")

    def dataset_dir(self, name: str) -> Path:
        return self.files / check_name(name, "dataset name")

    def server_logs(self, kind: str) -> Path:
        return self.logs / check_name(kind, "server kind")

    def inside(self, path: Path | str) -> Path:
        """Resolve `path` relative to the workspace and refuse it if it leaves it."""
        return resolve_within(self.root, path, f"the workspace {self.root}")

    def new_tmp_dir(self, prefix: str) -> Path:
        import tempfile

        self.tmp.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=self.tmp))

    # -- discovery ---------------------------------------------------------------
    @classmethod
    def locate(cls, explicit: Path | str | None = None) -> "Workspace":
        """--workspace, then NOCODETUNE_WORKSPACE, then cwd or a parent, then ./ModelTrainingWorkspace."""
        if explicit:
            return cls(explicit)
        env = os.environ.get("NOCODETUNE_WORKSPACE")
        if env:
            return cls(env)
        cwd = Path.cwd().resolve()
        for folder in (cwd, *cwd.parents):
            if (folder / MARKER).exists() or cls(folder).exists():
                return cls(folder)
        return cls(cwd / DEFAULT_DIRNAME)
