"""Pre-flight checks: everything that can be known about a job before it trains.

A training run that fails after ten minutes on a missing column or a model that is not
on disk wastes the user's time, so `preflight` checks the data, the model and its
tokenizer, token lengths, module names, memory and step counts up front, and reports
all problems at once. It never loads model weights (only config, headers and the
tokenizer).

It runs the training code's own functions: rows become examples through
`data.examples.read_examples`, examples become tokens and masks through `data.tokens`,
and steps are counted by `data.tokens.training_steps`. So what validate accepts is what
trains, and a row refused here is refused by training with the same message.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from nocodetune.config.validate_resources import check_resources, plan_resources
from nocodetune.data.examples import Example, ExampleSet, read_examples, row_list, split_examples
from nocodetune.errors import NocodetuneError
from nocodetune.model_source import ResolvedModel
from nocodetune.records.job import DatasetSnapshot, ResolvedJob
from nocodetune.records.schema import JobConfig
from nocodetune.workspace import Workspace

MAX_TOKENIZED_EXAMPLES = 20000  # beyond this, token statistics and step counts are extrapolated from a sample


class Issue(BaseModel):
    field: str | None = None
    message: str


class ValidationReport(BaseModel):
    """What `job validate` prints and `POST /api/jobs/validate` returns."""

    ok: bool = True
    errors: list[Issue] = Field(default_factory=list)
    warnings: list[Issue] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)

    def error(self, message: str, field: str | None = None) -> None:
        self.errors.append(Issue(field=field, message=message))
        self.ok = False

    def warn(self, message: str, field: str | None = None) -> None:
        self.warnings.append(Issue(field=field, message=message))


def world_size(config: JobConfig) -> int:
    """Training processes in all (num_processes × num_nodes, 'auto' resolved for this machine): the resource plan's."""
    return plan_resources(config).world_size


# -- model size and memory ----------------------------------------------------------


def _safetensors_params(folder: Path) -> int | None:
    """Parameter count from safetensors headers (a few KB read, no weights)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        for name, info in header.items():
            if name != "__metadata__":
                total += math.prod(info.get("shape") or [1])
    return total


_GGUF_KEYS = {
    "embedding_length": "hidden_size",
    "block_count": "num_hidden_layers",
    "feed_forward_length": "intermediate_size",
    "vocab_size": "vocab_size",
    "attention.head_count": "num_attention_heads",
    "attention.head_count_kv": "num_key_value_heads",
}


def _gguf_dims(path: Path) -> dict[str, int]:
    """Shape numbers and parameter count from GGUF metadata (memory-mapped, weights untouched)."""
    try:
        from gguf import GGUFReader

        reader = GGUFReader(str(path))
        out: dict[str, int] = {}
        for key, field in reader.fields.items():
            for suffix, name in _GGUF_KEYS.items():
                if key.endswith("." + suffix) and field.data:
                    out[name] = int(field.parts[field.data[0]][0])
        if "vocab_size" not in out and "tokenizer.ggml.tokens" in reader.fields:
            out["vocab_size"] = len(reader.fields["tokenizer.ggml.tokens"].data)
        out["params"] = int(sum(int(t.n_elements) for t in reader.tensors))
        return out
    except Exception:  # noqa: BLE001 - a size estimate must not fail validation
        return {}


def _config_dims(folder: Path) -> dict[str, int]:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    cfg = cfg.get("text_config", cfg)
    keys = ("hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size", "num_attention_heads", "num_key_value_heads")
    dims = {k: int(cfg[k]) for k in keys if isinstance(cfg.get(k), int)}
    params = _safetensors_params(folder)
    if params is None and {"hidden_size", "num_hidden_layers", "intermediate_size", "vocab_size"} <= dims.keys():
        h, n, i, v = dims["hidden_size"], dims["num_hidden_layers"], dims["intermediate_size"], dims["vocab_size"]
        params = v * h + n * (4 * h * h + 3 * h * i)  # embeddings + attention + MLP
    if params is not None:
        dims["params"] = params
    return dims


def model_dims(model_path: Path, gguf_file: str | None) -> dict[str, int]:
    """Model shape numbers (params, hidden_size, num_hidden_layers, intermediate_size, vocab_size)."""
    return _gguf_dims(model_path / gguf_file) if gguf_file else _config_dims(model_path)


def _lora_params(dims: Mapping[str, int], r: int) -> int:
    """Adapter size for 'all-linear' (attention + MLP projections of every layer)."""
    h = dims.get("hidden_size", 0)
    i = dims.get("intermediate_size", 4 * h)
    heads = dims.get("num_attention_heads") or 1
    kv = h * dims.get("num_key_value_heads", heads) // heads
    per_layer = r * ((h + h) * 2 + (h + kv) * 2 + (h + i) * 2 + (i + h))
    return dims.get("num_hidden_layers", 0) * per_layer


def estimate_memory_gb(config: JobConfig, dims: Mapping[str, int]) -> dict[str, float | int]:
    """A rough peak-memory estimate in GB: weights, gradients, optimizer states, activations.

    full: weights + grads + AdamW (2 fp32 states); lora: frozen weights + adapter training
    state; qlora: ~4.5-bit weights. Activations count the logits (big for large vocabularies).
    DPO and ORPO run the chosen and the rejected answer of each pair (twice the tokens);
    DPO also needs its reference model: with an adapter that is the same weights with the
    adapter off (nothing more), for full fine-tuning a frozen copy of the weights.
    """
    params = dims.get("params", 0)
    weight_bytes = {"float32": 4, "auto": 4, "bfloat16": 2, "float16": 2}[config.model.dtype]
    if config.method == "full":
        model_bytes = params * (2 * weight_bytes + 8)
    else:
        per_weight = 0.56 if config.method == "qlora" else weight_bytes
        model_bytes = params * per_weight + _lora_params(dims, config.lora.r) * 16
    t = config.training
    pairs = 2 if config.objective in ("dpo", "orpo") else 1  # chosen + rejected sequences
    tokens = t.per_device_train_batch_size * t.max_length * pairs
    reference = params * weight_bytes if config.objective == "dpo" and config.method == "full" else 0
    hidden, layers, vocab = dims.get("hidden_size", 0), dims.get("num_hidden_layers", 0), dims.get("vocab_size", 0)
    act_layers = 1 if t.gradient_checkpointing else max(layers, 1)
    activations = tokens * hidden * act_layers * 16 * weight_bytes / 4 + tokens * vocab * 4 * 2
    gb = 1024**3
    total = model_bytes + activations + reference
    return {
        "model_gb": round(model_bytes / gb, 2),
        "activations_gb": round(activations / gb, 2),
        "reference_gb": round(reference / gb, 2),
        "total_gb": round(total / gb, 2),
        "model_bytes": int(model_bytes),
        "total_bytes": int(total),
    }


# -- the checks -----------------------------------------------------------------------


def _dataset_path(ws: Workspace, snap: DatasetSnapshot, job_dir: Path | None) -> Path:
    """The job's snapshot once the job exists; before that, the stored version (files/<name>/v<N>/)."""
    if job_dir is not None:
        return job_dir / snap.file
    return ws.dataset_dir(snap.name) / f"v{snap.version}" / Path(snap.file).name


class _Data(BaseModel):
    found: ExampleSet
    train_idx: list[int] = Field(description="Indices into found.examples of the training split.")
    eval_idx: list[int]

    @property
    def train(self) -> list[Example]:
        return [self.found.examples[i] for i in self.train_idx]


def _check_data(ws: Workspace, resolved: ResolvedJob, job_dir: Path | None, report: ValidationReport) -> _Data | None:
    config = resolved.config
    if not resolved.datasets:
        report.error("no dataset: choose one for dataset.ref (name@version)", field="dataset.ref")
        return None
    snap = resolved.datasets[0]
    try:
        found = read_examples(_dataset_path(ws, snap, job_dir), config.dataset)
    except NocodetuneError as exc:
        report.error(exc.message + (f" ({exc.hint})" if exc.hint else ""), field=exc.field or "dataset.ref")
        return None
    report.stats.update(dataset=f"{snap.name}@{snap.version}", rows=snap.rows, used_rows=found.total_rows, format=found.format, columns=found.columns)
    if found.refused:
        report.error(found.refusal_summary(), field=found.refused[0].field)
    train_idx, eval_idx = split_examples(found.examples, config.training.eval_split, config.training.seed)
    report.stats.update(train_rows=len(train_idx), eval_rows=len(eval_idx))
    if not train_idx:
        report.error("no training rows left after removing refused rows and the eval split", field="dataset.ref")
    if config.objective == "sft" and found.format == "preference":
        report.error("this dataset holds preference pairs (prompt, chosen, rejected): set objective to dpo or orpo to train on them", field="objective")
    elif config.objective != "sft" and found.format != "preference":
        report.error(f"objective {config.objective} trains on preference pairs, but the dataset was read as {found.format}", field="dataset.format")
    if config.training.early_stopping_patience and not eval_idx:
        report.error("early stopping watches the eval loss, and this job holds out no rows", field="training.early_stopping_patience")
    return _Data(found=found, train_idx=train_idx, eval_idx=eval_idx)


def _stamp(model: ResolvedModel) -> tuple[str, str | None, float]:
    """Cache key of a located model: where it is and when it last changed."""
    main = model.path / model.gguf_file if model.gguf_file else model.path / "config.json"
    return str(model.path), model.gguf_file, main.stat().st_mtime if main.exists() else 0.0


_tokenizers: dict[tuple[str, str | None, float], Any] = {}
_dims: dict[tuple[str, str | None, float], dict[str, int]] = {}


def load_model_tokenizer(model: ResolvedModel) -> Any:
    """The model's tokenizer, kept for the life of the process (the API's warm validator reuses it).

    Validation only reads from it, so sharing one object between validations is safe.
    """
    from nocodetune.model_source import load_tokenizer

    key = _stamp(model)
    if key not in _tokenizers:
        _tokenizers[key] = load_tokenizer(model)
    return _tokenizers[key]


def _model_dims_cached(model: ResolvedModel) -> dict[str, int]:
    from nocodetune.model_source import converted_dir

    key = _stamp(model)
    if key not in _dims:
        converted = converted_dir(model)
        if converted is not None and (converted / "config.json").is_file():
            _dims[key] = model_dims(converted, None)  # parsing a GGUF takes seconds; its converted copy does not
        else:
            _dims[key] = model_dims(model.path, model.gguf_file)
    return _dims[key]


def _check_model(resolved: ResolvedJob, report: ValidationReport) -> Any | None:
    """Resolve the model locally and load its tokenizer (no weights); None on failure."""
    from nocodetune.model_source import resolve_model

    try:
        model = resolve_model(resolved.config.model)
    except NocodetuneError as exc:
        report.error(str(exc), field=exc.field or "model.source")
        return None
    report.stats["model"] = model.display_name
    dims = _model_dims_cached(model)
    if "params" in dims:
        report.stats["parameters"] = dims["params"]
        report.stats["memory"] = estimate_memory_gb(resolved.config, dims)
        _check_memory(report)
    try:
        return load_model_tokenizer(model)
    except Exception as exc:  # noqa: BLE001 - any tokenizer failure is a model problem to report
        report.error(f"cannot load the tokenizer of {model.display_name}: {exc}", field="model.source")
        return None


def _check_memory(report: ValidationReport) -> None:
    import psutil

    total = report.stats["memory"]["total_gb"]
    ram = psutil.virtual_memory().total / 1024**3
    report.stats["memory"]["ram_gb"] = round(ram, 1)
    if total > ram:
        report.warn(f"estimated peak memory {total} GB exceeds this machine's {ram:.1f} GB of RAM (fine on a GPU with that much memory)", field="training.per_device_train_batch_size")


def _sample(data: _Data) -> tuple[list[int], float]:
    """Indices of at most MAX_TOKENIZED_EXAMPLES examples, evenly spread, and the factor to scale counts back up."""
    n = len(data.found.examples)
    if n <= MAX_TOKENIZED_EXAMPLES:
        return list(range(n)), 1.0
    stride = n / MAX_TOKENIZED_EXAMPLES
    return [int(i * stride) for i in range(MAX_TOKENIZED_EXAMPLES)], stride


def _preview(tokenizer: Any, tokens: Any) -> dict[str, Any]:
    """The first example as the model sees it: the untrained part, the trained part, and segments in order."""
    from nocodetune.data.tokens import IGNORE

    segments: list[dict[str, Any]] = []
    for token, label in zip(tokens.input_ids, tokens.labels):
        trained = label != IGNORE
        if segments and segments[-1]["trained"] == trained:
            segments[-1]["ids"].append(token)
        else:
            segments.append({"trained": trained, "ids": [token]})
    parts = [{"text": tokenizer.decode(seg["ids"]), "trained": seg["trained"], "tokens": len(seg["ids"])} for seg in segments]
    return {
        "prompt": "".join(p["text"] for p in parts if not p["trained"]),
        "completion": "".join(p["text"] for p in parts if p["trained"]),
        "prompt_tokens": sum(p["tokens"] for p in parts if not p["trained"]),
        "completion_tokens": sum(p["tokens"] for p in parts if p["trained"]),
        "segments": parts,
    }


def _check_tokens(tokenizer: Any, data: _Data, config: JobConfig, report: ValidationReport) -> None:
    """Token lengths, trained tokens per example, truncation, and the exact step count."""
    from nocodetune.data.tokens import tokenize_example, training_steps

    t = config.training
    world = world_size(config)
    if data.found.format == "preference":
        _check_pairs(tokenizer, data, config, report)
        train_count = len(data.train_idx)
    else:
        sample, scale = _sample(data)
        examples, rows = data.found.examples, data.found.rows
        try:
            tokenized = [tokenize_example(examples[i], tokenizer, t.max_length, t.completion_only_loss) for i in sample]
        except NocodetuneError as exc:
            report.error(exc.message, field=exc.field)
            return
        lengths = [out.full_length for out in tokenized]
        trained = [out.trained_tokens for out in tokenized]
        long_rows = [rows[i] for i, n in zip(sample, lengths) if n > t.max_length]
        dropped_rows = [rows[i] for i, n in zip(sample, trained) if n == 0]
        in_train = set(data.train_idx)
        dropped_train = sum(1 for i, n in zip(sample, trained) if n == 0 and i in in_train)
        train_count = len(data.train_idx) - round(dropped_train * scale)
        report.stats["tokens"] = {
            "examples": len(lengths),
            "sampled": scale > 1,
            "mean": round(sum(lengths) / max(len(lengths), 1), 1),
            "max": max(lengths, default=0),
            "trained_mean": round(sum(trained) / max(len(trained), 1), 1),
            "trained_min": min(trained, default=0),
            "total": round(sum(min(n, t.max_length) for n in lengths) * scale),
            "over_max_length": len(long_rows),
            "max_length": t.max_length,
        }
        if tokenized:
            report.stats["example_preview"] = _preview(tokenizer, tokenized[0])
        if long_rows:
            report.warn(
                f"{len(long_rows)} of {len(lengths)} examples are longer than training.max_length={t.max_length} tokens "
                f"and will be cut (longest {max(lengths)}): rows {row_list(long_rows)}",
                field="training.max_length",
            )
        if dropped_rows:
            report.warn(
                f"{len(dropped_rows)} examples will be skipped: their prompt fills training.max_length, "
                f"leaving no answer to learn: rows {row_list(dropped_rows)}",
                field="training.max_length",
            )
        if data.found.format != "text" and not getattr(tokenizer, "chat_template", None):
            report.warn("the model's tokenizer has no chat template; turns are joined line by line", field="model.source")
    per_epoch, total = training_steps(
        train_count, batch_size=t.per_device_train_batch_size, grad_accum=t.gradient_accumulation_steps,
        epochs=t.num_train_epochs, max_steps=t.max_steps, world_size=world,
    )
    report.stats.update(trained_examples=train_count, steps_per_epoch=per_epoch, total_steps=total, world_size=world)
    if train_count and t.max_steps <= 0 and train_count < t.per_device_train_batch_size * t.gradient_accumulation_steps * world:
        report.warn(
            f"only {train_count} training examples for an effective batch of {t.per_device_train_batch_size * t.gradient_accumulation_steps * world}: one step per epoch",
            field="training.per_device_train_batch_size",
        )


def _check_pairs(tokenizer: Any, data: _Data, config: JobConfig, report: ValidationReport) -> None:
    from nocodetune.data.tokens import preference_lengths

    sample, _ = _sample(data)
    too_long: list[int] = []
    lengths = []
    for index in sample:
        ex, row = data.found.examples[index], data.found.rows[index]
        try:
            n = preference_lengths(ex, tokenizer)
        except NocodetuneError as exc:
            report.error(exc.message, field=exc.field)
            return
        lengths.append(n)
        if n.prompt >= config.training.max_length:
            too_long.append(row)
    if lengths:
        full = [n.prompt + max(n.chosen, n.rejected) for n in lengths]  # a pair's longer sequence, what max_length cuts
        report.stats["tokens"] = {  # the keys SFT reports too (examples, mean, max, over_max_length, max_length), then the pair's parts
            "examples": len(lengths),
            "mean": round(sum(full) / len(full), 1),
            "over_max_length": sum(1 for n in full if n > config.training.max_length),
            "prompt_mean": round(sum(n.prompt for n in lengths) / len(lengths), 1),
            "chosen_mean": round(sum(n.chosen for n in lengths) / len(lengths), 1),
            "rejected_mean": round(sum(n.rejected for n in lengths) / len(lengths), 1),
            "max": max(full),
            "max_length": config.training.max_length,
        }
    if too_long:
        report.error(
            f"{len(too_long)} pairs have a prompt of training.max_length={config.training.max_length} tokens or more, leaving no room "
            f"for the answers: rows {row_list(sorted(too_long))}",
            field="training.max_length",
        )


def _check_modules(resolved: ResolvedJob, report: ValidationReport) -> None:
    """Every name in lora.target_modules must select a module of this model (peft would fail mid-run)."""
    from nocodetune.config.target_modules import describe_modules, translate, unmatched
    from nocodetune.modeling.modules import linear_module_names

    config = resolved.config
    targets = config.lora.target_modules
    if config.method not in ("lora", "qlora") or targets == "all-linear":
        return
    try:
        names = linear_module_names(config.model)
    except NocodetuneError:
        return  # the model check reports a missing model
    except Exception as exc:  # noqa: BLE001 - an unreadable config is reported, never a crash
        report.warn(f"could not list the model's modules to check lora.target_modules: {exc}", field="lora.target_modules")
        return
    missing = unmatched(targets, names)
    if not missing:
        return
    suggestion = translate([t for t in missing], names) if not isinstance(targets, str) else None
    renames = f" ({'; '.join(suggestion.notes)})" if suggestion and suggestion.notes else ""
    report.error(
        f"lora.target_modules names modules this model does not have: {', '.join(repr(m) for m in missing)}{renames}; "
        f"its linear modules are: {describe_modules(names)}",
        field="lora.target_modules",
    )


def _check_parent(ws: Workspace, resolved: ResolvedJob, job_dir: Path | None, report: ValidationReport) -> None:
    from nocodetune.modeling.lineage import trained_output
    from nocodetune.records.job import parent_paths

    if not resolved.lineage.parent:
        return
    parent = parent_paths(resolved, job_dir if job_dir is not None else ws.job(resolved.name).root)
    if parent is None or trained_output(parent) is None:
        report.warn(f"parent job {resolved.lineage.parent!r} has no trained model yet; run it before this job", field="parent")


def _check_hardware(config: JobConfig, report: ValidationReport) -> None:
    if config.method != "qlora":
        return
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        report.error("method qlora needs the bitsandbytes package (pip install bitsandbytes) and an NVIDIA GPU; use method lora on this machine", field="method")
        return
    import torch  # only for qlora: the one check that needs it

    if not torch.cuda.is_available():
        report.error("method qlora needs a CUDA GPU, and none is available; use method lora instead", field="method")


def preflight(ws: Workspace, resolved: ResolvedJob, job_dir: Path | None = None) -> ValidationReport:
    """Check a resolved job without training; `job_dir` is its folder once created (None: not yet)."""
    report = ValidationReport()
    config = resolved.config
    _check_hardware(config, report)
    data = _check_data(ws, resolved, job_dir, report)
    tokenizer = _check_model(resolved, report)
    if data is not None and tokenizer is not None:
        _check_tokens(tokenizer, data, config, report)
    if tokenizer is not None:
        _check_modules(resolved, report)
    _check_parent(ws, resolved, job_dir, report)
    check_resources(resolved, report, workspace=ws.root, job_dir=job_dir)  # after the data and memory stats it reads
    report.stats["method"] = config.method
    return report
