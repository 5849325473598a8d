"""Checks an export request before any weights are loaded: every refusal says why, at once.

Light (no torch, no transformers): the API runs these checks in the request, so a GGUF of
an unsupported architecture, a second adapter in the lineage, an unavailable quantiser or
a missing hub token is refused with a 4xx naming the cause, instead of failing minutes
later in a background process. The export process runs the same checks again.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from pydantic import BaseModel, Field

from nocodetune.errors import ConfigError, ConflictError, ModelNotFoundError
from nocodetune.model_source import converted_dir, resolve_model
from nocodetune.modeling.lineage import ancestors, require_output, trained_output
from nocodetune.records.exports import ExportRequest
from nocodetune.records.job import ResolvedJob, read_resolved
from nocodetune.records.weights import read_weights
from nocodetune.settings import get_settings
from nocodetune.workspace import JobPaths

# model_type (transformers) -> GGUF architecture name, for the architectures this exporter
# writes and transformers reads back from GGUF with the same tensors and hyper-parameters.
GGUF_ARCHITECTURES: dict[str, str] = {"llama": "llama"}
_HUB_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class ExportPlan(BaseModel):
    """What the checks found: the facts the export itself needs first."""

    format: str
    quant: str | None = None
    model_type: str | None = Field(None, description="transformers model_type of the job's model (GGUF and Ollama).")
    adapter_folder: str | None = Field(None, description="The job's adapter folder (adapter export).")


def check_request(paths: JobPaths, request: ExportRequest) -> ExportPlan:
    """Everything that can be refused without loading weights, in the order a user would fix it."""
    resolved = read_resolved(paths)
    require_output(paths)  # a job that has not trained has nothing to export
    plan = ExportPlan(format=request.format, quant=request.effective_quant())
    if request.out is not None:
        check_destination(Path(request.out).expanduser(), paths)
    if request.format == "adapter":
        plan.adapter_folder = str(check_single_adapter(paths, resolved))
    if request.format in ("gguf", "ollama"):
        plan.model_type = model_type_of(paths, resolved)
        check_gguf_architecture(plan.model_type)
        check_quant(plan.quant or "")
        check_gguf_tokenizer(paths)
    if request.format == "hub":
        check_hub(request)
    return plan


def check_destination(out: Path, paths: JobPaths) -> None:
    """`--out` must be a new folder (or an empty one), and not inside the job's own outputs."""
    target = out.resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConflictError(f"{out} already exists and is not an empty folder", field="out", file=str(out), hint="choose a new folder; an export never overwrites files")
    outputs = paths.outputs.resolve()
    if target == outputs or outputs in target.parents:
        raise ConfigError(f"{out} is inside the job's outputs folder, which training replaces", field="out", file=str(out))


def check_single_adapter(paths: JobPaths, resolved: ResolvedJob) -> Path:
    """The job's adapter folder, if the job's model is exactly its base plus that one adapter."""
    folder = paths.adapter_dir
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(
            f"job {paths.name!r} has no adapter (it is a full fine-tune: {paths.model_dir.name}/)",
            field="format", hint="export it with --format merged, or gguf",
        )
    record = read_weights(folder)
    if record is not None:  # it lists every layer below this adapter, then the adapter itself
        below = [(layer.job, layer.kind) for layer in record.layers[:-1]]
    else:  # a job trained before weights records existed: its parents tell the same story
        below = [(p.name, out.kind) for p, _ in ancestors(resolved) if (out := trained_output(p)) is not None]
    if below:
        full = [job for job, kind in below if kind != "adapter"]
        if full:
            reason = f"its adapter was trained on job {full[-1]!r}'s full fine-tune, which exists only in this workspace"
        else:
            names = [job for job, _ in below] + [paths.name]
            reason = f"its lineage has {len(names)} adapters ({', '.join(names)}); one adapter cannot hold them all"
        raise ConfigError(
            f"cannot export job {paths.name!r} as an adapter: {reason}",
            field="format", hint="export --format merged (the whole lineage merged into one model) or --format gguf",
        )
    return folder


def model_type_of(paths: JobPaths, resolved: ResolvedJob) -> str:
    """transformers' model_type of the job's model, read from a config.json or the base GGUF's metadata."""
    chain = [*(p for p, _ in ancestors(resolved)), paths]
    for job in reversed(chain):  # the newest full model decides (an architecture never changes along a lineage)
        found = trained_output(job)
        if found is not None and found.kind in ("model", "merged"):
            return _config_model_type(found.folder / "config.json")
    root = ancestors(resolved)[0][1] if resolved.lineage.parent_dir else resolved
    located = resolve_model(root.config.model)
    converted = converted_dir(located)
    if converted is not None and (converted / "config.json").is_file():
        return _config_model_type(converted / "config.json")
    if located.gguf_file:
        return _gguf_model_type(located.path / located.gguf_file)
    return _config_model_type(located.path / "config.json")


def _config_model_type(path: Path) -> str:
    try:
        value = json.loads(path.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot read {path}: {exc}", file=str(path)) from None
    if not isinstance(value, str):
        raise ModelNotFoundError(f"{path} names no model_type", file=str(path))
    return value


def _gguf_model_type(path: Path) -> str:
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    field = reader.fields.get("general.architecture")
    if field is None:
        raise ModelNotFoundError(f"{path} has no general.architecture", file=str(path))
    return str(field.contents())


def check_gguf_architecture(model_type: str) -> None:
    if model_type not in GGUF_ARCHITECTURES:
        raise ConfigError(
            f"GGUF export does not support the {model_type!r} architecture yet (supported: {', '.join(sorted(GGUF_ARCHITECTURES))})",
            field="format", hint="export --format merged (a Hugging Face folder) instead",
        )


def quant_refusal(quant: str) -> str | None:
    """Why `quant` cannot be written with the installed gguf library, or None when it can.

    Asked of the library itself (quantising one block), so a gguf release that adds a
    quantiser is used without a change here.
    """
    import numpy as np
    from gguf import GGMLQuantizationType, quants
    from gguf.constants import GGML_QUANT_SIZES

    qtype = GGMLQuantizationType[quant.upper()]
    block = GGML_QUANT_SIZES[qtype][0]
    try:
        quants.quantize(np.zeros((1, block), dtype=np.float32), qtype)
    except NotImplementedError:
        from importlib.metadata import version

        return f"the installed gguf library ({version('gguf')}) has no {qtype.name} quantiser (it can only read {qtype.name})"
    return None


def check_quant(quant: str) -> None:
    reason = quant_refusal(quant)
    if reason:
        raise ConfigError(f"cannot write --quant {quant}: {reason}", field="quant", hint="use q8_0 (near lossless), q4_0 (smallest), f16 or bf16")


def check_gguf_tokenizer(paths: JobPaths) -> None:
    """GGUF export writes byte-level BPE vocabularies (GPT-2 style, as SmolLM2 and Llama 3 use)."""
    found = trained_output(paths)
    folder = found.folder if found is not None else None
    path = folder / "tokenizer.json" if folder is not None else None
    if path is None or not path.is_file():
        return  # the export checks the tokenizer it loads
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    refusal = tokenizer_refusal(data)
    if refusal:
        raise ConfigError(f"GGUF export cannot write this tokenizer: {refusal}", field="format", file=str(path), hint="export --format merged instead")


def tokenizer_refusal(tokenizer_json: dict) -> str | None:
    """Why a tokenizer.json cannot go into a GGUF as a byte-level BPE vocabulary, or None."""
    model = (tokenizer_json.get("model") or {}).get("type")
    if model != "BPE":
        return f"its model is {model!r}, only byte-level BPE is supported"
    if "ByteLevel" not in json.dumps(tokenizer_json.get("pre_tokenizer")):
        return "it is not byte-level (a SentencePiece-style BPE); only byte-level BPE is supported"
    return None


def hub_token() -> str | None:
    """The user's Hugging Face token: HF_TOKEN, or the one `huggingface-cli login` saved (read from disk, no network)."""
    token = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if token:
        return token
    try:
        from huggingface_hub import get_token

        return get_token()
    except Exception:  # noqa: BLE001 - an unreadable token file is the same as no token
        return None


def check_hub(request: ExportRequest) -> None:
    if not request.repo or not _HUB_REPO_RE.match(request.repo):
        raise ConfigError(f"--repo must be a hub repository id like user/name, got {request.repo!r}", field="repo")
    if not get_settings().allow_hub_uploads:
        raise ConfigError(
            "pushing to the Hugging Face Hub sends your model off this machine, which NoCodeTune never does unless you say so",
            field="format", hint="set NOCODETUNE_ALLOW_HUB_UPLOADS=1 to allow it",
        )
    if not hub_token():
        raise ConfigError("no Hugging Face token: set HF_TOKEN (a token with write access) or run `huggingface-cli login`", field="format")
