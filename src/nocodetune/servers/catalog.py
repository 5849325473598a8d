"""The models catalog: every model this machine can train or serve, found without a network.

Sources, in the order the UI lists them: the embedded default model, models the user
registered (`records/models.py`), models already in the local Hugging Face cache (its own
cache scan, which never touches the network), trained jobs (what `modeling.lineage.trained_output`
finds, the output a model server serves) and exported models (folders or GGUF files under a job's `exports/`).
Downloading from the hub is the one networked action, and only when the user opted in
with NOCODETUNE_ALLOW_HUB_DOWNLOADS=1.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from nocodetune.errors import ConflictError, NocodetuneError, NotFoundError
from nocodetune.records.models import RegisteredModel, read_registered, write_registered
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace

log = logging.getLogger(__name__)

ModelKind = Literal["default", "registered", "hub_cache", "job", "export"]


class ModelEntry(BaseModel):
    id: str
    name: str
    kind: ModelKind
    source: str | None = Field(None, description="What model.source (or a model server's model) takes; None for a trained job.")
    job: str | None = Field(None, description="The trained job (kind job/export): new jobs continue from it as their parent.")
    path: str | None = None
    format: Literal["hf", "gguf", "adapter"] = "hf"
    size_bytes: int | None = None
    detail: str = ""


class Download(BaseModel):
    repo_id: str
    status: Literal["downloading", "done", "failed"]
    error: str | None = None


class Catalog(BaseModel):
    models: list[ModelEntry]
    hub_downloads: bool = Field(description="Whether this server may download from the Hugging Face Hub (opt-in).")
    downloads: list[Download] = Field(default_factory=list)


_downloads: dict[str, Download] = {}
_downloads_lock = threading.Lock()


def _size(path: Path) -> int | None:
    try:
        if path.is_file():
            return path.stat().st_size
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return None


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:60] or "model"


# -- the sources ------------------------------------------------------------------------


def _default_model() -> list[ModelEntry]:
    from nocodetune.model_source import DEFAULT_MODEL_NAME, default_gguf_path

    gguf = default_gguf_path()
    if gguf is None:
        return []
    return [ModelEntry(id="default", name=f"{DEFAULT_MODEL_NAME} (built in)", kind="default", source="default", path=str(gguf), format="gguf",
                       size_bytes=_size(gguf), detail="Small and fast: good for trying things out on a laptop.")]


def _registered(ws: Workspace) -> list[ModelEntry]:
    out = []
    for m in read_registered(ws).models:
        path = Path(m.path)
        missing = not path.exists()
        out.append(ModelEntry(id=m.id, name=m.name, kind="registered", source=m.path, path=m.path, format="gguf" if m.kind == "gguf" else "hf",
                              size_bytes=None if missing else _size(path), detail="missing: the file or folder was moved or deleted" if missing else "registered by you"))
    return out


def _hub_cache() -> list[ModelEntry]:
    """Models in the local Hugging Face cache that hold a config.json or a GGUF file."""
    try:
        from huggingface_hub import constants, scan_cache_dir

        info = scan_cache_dir(constants.HF_HUB_CACHE)  # read now: scan_cache_dir's default was bound when it was imported
    except Exception as exc:  # noqa: BLE001 - no cache (or an unreadable one) means no cached models
        log.debug("no Hugging Face cache: %s", exc)
        return []
    out = []
    for repo in sorted(info.repos, key=lambda r: r.repo_id.lower()):
        if repo.repo_type != "model":
            continue
        names = {f.file_name for rev in repo.revisions for f in rev.files}
        if "config.json" not in names and not any(n.endswith(".gguf") for n in names):
            continue  # a tokenizer or a dataset-like repo: nothing to train
        out.append(ModelEntry(id=f"hf-{_slug(repo.repo_id)}", name=repo.repo_id, kind="hub_cache", source=repo.repo_id, path=str(repo.repo_path),
                              format="hf" if "config.json" in names else "gguf", size_bytes=repo.size_on_disk, detail="in the Hugging Face cache"))
    return out


def _jobs(ws: Workspace) -> list[ModelEntry]:
    """Trained jobs (their outputs serve as a model; new jobs continue from them) and their exports."""
    from nocodetune.modeling.lineage import trained_output

    out: list[ModelEntry] = []
    if not ws.jobs.is_dir():
        return out
    for folder in sorted(p for p in ws.jobs.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            found = trained_output(ws.job(folder.name))
        except NocodetuneError:
            found = None  # a folder whose name is not a job name
        if found is not None:
            kind, model = found.kind, found.folder
            out.append(ModelEntry(id=f"job-{folder.name}", name=folder.name, kind="job", job=folder.name, path=str(model),
                                  format="adapter" if kind == "adapter" else "hf", size_bytes=_size(model), detail=f"trained job ({kind})"))
        for exports in (folder / "exports", folder / "outputs" / "exports"):
            if not exports.is_dir():
                continue
            for item in sorted(exports.iterdir()):
                if item.name.startswith("."):
                    continue
                ggufs = [item] if item.suffix == ".gguf" else sorted(item.glob("*.gguf")) if item.is_dir() else []
                if item.is_dir() and (item / "config.json").is_file():
                    out.append(ModelEntry(id=f"export-{folder.name}-{_slug(item.name)}", name=f"{folder.name} · {item.name}", kind="export", job=folder.name,
                                          source=str(item), path=str(item), size_bytes=_size(item), detail="exported model folder"))
                for g in ggufs:
                    out.append(ModelEntry(id=f"export-{folder.name}-{_slug(g.stem)}", name=f"{folder.name} · {g.name}", kind="export", job=folder.name,
                                          source=str(g), path=str(g), format="gguf", size_bytes=_size(g), detail="exported GGUF file"))
    return out


def catalog(ws: Workspace) -> Catalog:
    models = [*_default_model(), *_registered(ws), *_hub_cache(), *_jobs(ws)]
    with _downloads_lock:
        downloads = list(_downloads.values())
    return Catalog(models=models, hub_downloads=get_settings().allow_hub_downloads, downloads=downloads)


# -- registering ------------------------------------------------------------------------


def register(ws: Workspace, path: str, name: str | None = None) -> ModelEntry:
    """Register a model folder or a .gguf file, after checking it is one (the check training uses)."""
    from nocodetune.model_source import resolve_model
    from nocodetune.records.schema import ModelSection

    raw = (path or "").strip()
    if not raw:
        raise NocodetuneError("give the path of a model folder or a .gguf file", field="path")
    target = Path(raw).expanduser()
    if not target.is_absolute():
        raise NocodetuneError(f"{raw!r} is not a full path; give the whole path, starting with /", field="path")
    target = target.resolve()
    if not target.exists():
        raise NotFoundError(f"nothing at {target}", field="path")
    if target.is_dir() and not (target / "config.json").is_file():
        ggufs = sorted(p.name for p in target.glob("*.gguf"))
        if ggufs:
            raise NocodetuneError(f"{target} holds GGUF files ({', '.join(ggufs[:3])}); register the file itself", field="path")
    resolve_model(ModelSection(source=str(target)))  # the same check as training: refuses what it could not load
    record = read_registered(ws)
    for existing in record.models:
        if Path(existing.path) == target:
            raise ConflictError(f"{target} is already registered as {existing.name!r}", field="path")
    label = (name or "").strip() or (target.stem if target.is_file() else target.name)
    ids = {m.id for m in record.models}
    base = f"my-{_slug(label)}"
    model_id = base if base not in ids else f"{base}-{hashlib.sha256(str(target).encode()).hexdigest()[:6]}"
    entry = RegisteredModel(id=model_id, name=label, path=str(target), kind="gguf" if target.suffix.lower() == ".gguf" else "folder")
    record.models.append(entry)
    write_registered(ws, record)
    return next(m for m in _registered(ws) if m.id == model_id)


def unregister(ws: Workspace, model_id: str) -> None:
    """Forget a registered model; its files stay where they are."""
    record = read_registered(ws)
    kept = [m for m in record.models if m.id != model_id]
    if len(kept) == len(record.models):
        raise NotFoundError(f"no registered model {model_id!r}", field="id")
    record.models = kept
    write_registered(ws, record)


# -- hub downloads (opt-in) ---------------------------------------------------------------


class HubDownloadsOff(NocodetuneError):
    status_code = 403


_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


def start_download(repo_id: str, revision: str | None = None) -> Download:
    """Download a hub model into the local HF cache in the background; refused unless opted in."""
    if not get_settings().allow_hub_downloads:
        raise HubDownloadsOff(
            "downloading models from the Hugging Face Hub is turned off on this server",
            field="repo_id",
            hint="the person running NoCodeTune can allow it with NOCODETUNE_ALLOW_HUB_DOWNLOADS=1",
        )
    repo_id = (repo_id or "").strip()
    if not _REPO_ID.match(repo_id):
        raise NocodetuneError(f"{repo_id!r} is not a model id like 'owner/name'", field="repo_id")
    with _downloads_lock:
        current = _downloads.get(repo_id)
        if current is not None and current.status == "downloading":
            return current
        _downloads[repo_id] = Download(repo_id=repo_id, status="downloading")

    def work() -> None:
        try:
            from huggingface_hub import snapshot_download

            snapshot_download(repo_id, revision=revision)
            result = Download(repo_id=repo_id, status="done")
        except Exception as exc:  # noqa: BLE001 - any failure is reported on the Models page
            result = Download(repo_id=repo_id, status="failed", error=str(exc)[:500])
        with _downloads_lock:
            _downloads[repo_id] = result

    threading.Thread(target=work, name=f"download-{repo_id}", daemon=True).start()
    return _downloads[repo_id]
