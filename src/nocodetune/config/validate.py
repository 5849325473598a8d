"""Pre-flight checks: everything that can be known about a job before it trains.

A training run that fails after ten minutes on a missing column or a model that is not
on disk wastes the user's time, so `preflight` checks the data mapping, empty rows, the
model and its tokenizer, token lengths, memory and step counts up front, and reports all
problems at once. It never loads model weights (only config, headers and the tokenizer).

`detect_format` and `split_sizes` live here so that training uses the very same rules.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from nocodetune.config.validate_resources import check_resources
from nocodetune.records.job import DatasetSnapshot, ResolvedJob
from nocodetune.records.schema import ColumnMapping, JobConfig
from nocodetune.errors import DataError, NocodetuneError
from nocodetune.workspace import Workspace

MAX_TOKENIZED_ROWS = 2000  # token statistics use the first N examples: enough for mean/max, fast on a CPU
MAX_LISTED_ROWS = 10  # row numbers named in one message

# Roles each format needs (required) and may use (optional).
FORMAT_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "messages": (("messages",), ()),
    "alpaca": (("instruction", "output"), ("input",)),
    "prompt_completion": (("prompt", "completion"), ()),
    "text": (("text",), ()),
}
# Column names recognised for each role (case-insensitive), best first.
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "messages": ("messages", "conversations", "conversation", "chat"),
    "instruction": ("instruction", "instructions"),
    "input": ("input", "context"),
    "output": ("output",),
    "prompt": ("prompt", "question", "query", "input"),
    "completion": ("completion", "response", "answer", "output"),
    "text": ("text", "content", "document"),
}
_AUTO_ORDER = ("messages", "alpaca", "prompt_completion", "text")


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


# -- data format ----------------------------------------------------------------------


def _mapping_dict(mapping: ColumnMapping | Mapping[str, Any] | None) -> dict[str, str]:
    if mapping is None:
        return {}
    raw = mapping.model_dump() if isinstance(mapping, ColumnMapping) else dict(mapping)
    return {role: col for role, col in raw.items() if col}


def detect_format(columns: Sequence[str], mapping: ColumnMapping | Mapping[str, Any] | None = None, fmt: str = "auto") -> tuple[str, dict[str, str]]:
    """(format, {role: column}) for a dataset's columns.

    Columns named in `mapping` win; the rest are found by name (ROLE_ALIASES). With
    fmt='auto' the format is the one the explicit mapping points at, else the first of
    messages → alpaca → prompt_completion → text whose required roles are all present.
    Raises DataError naming the `dataset.columns.<role>` that is missing or wrong.
    """
    explicit = _mapping_dict(mapping)
    available = list(columns)
    for role, col in explicit.items():
        if col not in available:
            raise DataError(
                f"dataset.columns.{role} names column {col!r}, which the dataset does not have",
                field=f"dataset.columns.{role}",
                hint=f"columns in the dataset: {', '.join(available) or 'none'}",
            )
    by_lower = {c.lower(): c for c in reversed(available)}

    def find(role: str, taken: set[str]) -> str | None:
        if role in explicit:
            return explicit[role]
        for alias in ROLE_ALIASES[role]:
            col = by_lower.get(alias)
            if col is not None and col not in taken:
                return col
        return None

    def fill(name: str) -> tuple[dict[str, str], list[str]]:
        required, optional = FORMAT_ROLES[name]
        found: dict[str, str] = {}
        missing: list[str] = []
        for role in (*required, *optional):
            col = find(role, set(found.values()))
            if col is not None:
                found[role] = col
            elif role in required:
                missing.append(role)
        return found, missing

    if fmt == "auto":
        pointed = [name for name in _AUTO_ORDER if any(r in explicit for r in (*FORMAT_ROLES[name][0], *FORMAT_ROLES[name][1]))]
        for name in pointed or _AUTO_ORDER:
            found, missing = fill(name)
            if not missing:
                return name, found
        expect = "; ".join(f"{name}: {' + '.join(FORMAT_ROLES[name][0])}" for name in _AUTO_ORDER)
        raise DataError(
            f"cannot tell how to train on columns {', '.join(available) or '(none)'}",
            field="dataset.columns",
            hint=f"name the columns with --set dataset.columns.prompt=COL --set dataset.columns.completion=COL (or text/instruction/output/messages); recognised layouts are {expect}",
        )
    if fmt not in FORMAT_ROLES:
        raise DataError(f"unknown dataset.format {fmt!r}", field="dataset.format")
    found, missing = fill(fmt)
    if missing:
        role = missing[0]
        raise DataError(
            f"dataset.format is {fmt} but no column was found for {', '.join(missing)}",
            field=f"dataset.columns.{role}",
            hint=f"set dataset.columns.{role} to one of: {', '.join(available) or 'none'}",
        )
    return fmt, found


def _cell(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _messages_of(value: Any) -> list[dict[str, Any]] | None:
    """A messages cell as a list of {role, content}; JSON text (from CSV) is parsed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    if not isinstance(value, list):
        return None
    out = []
    for m in value:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or m.get("content") in (None, ""):
            return None
        out.append({"role": m["role"], "content": str(m["content"])})
    return out or None


def is_empty_example(row: Mapping[str, Any], fmt: str, mapping: Mapping[str, str]) -> bool:
    """True when a row has nothing to train on after mapping (a required part is blank)."""
    if fmt == "messages":
        return _messages_of(row.get(mapping["messages"])) is None
    required, _ = FORMAT_ROLES[fmt]
    return any(_cell(row.get(mapping[role])) in (None, "") for role in required)


def example_messages(row: Mapping[str, Any], fmt: str, mapping: Mapping[str, str], system_prompt: str | None = None) -> list[dict[str, str]] | str:
    """One row as chat messages (or plain text for format 'text')."""
    if fmt == "text":
        return str(row.get(mapping["text"]) or "")
    if fmt == "messages":
        messages = _messages_of(row.get(mapping["messages"])) or []
    elif fmt == "alpaca":
        prompt = str(row.get(mapping["instruction"]) or "")
        extra = row.get(mapping["input"]) if "input" in mapping else None
        if _cell(extra):
            prompt = f"{prompt}\n\n{extra}"
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": str(row.get(mapping["output"]) or "")}]
    else:
        messages = [
            {"role": "user", "content": str(row.get(mapping["prompt"]) or "")},
            {"role": "assistant", "content": str(row.get(mapping["completion"]) or "")},
        ]
    if system_prompt and not (messages and messages[0]["role"] == "system"):
        messages = [{"role": "system", "content": system_prompt}, *messages]
    return messages


def split_sizes(rows: int, eval_split: float) -> tuple[int, int]:
    """(train, eval) rows: eval is round(rows*split), at least 1 when split > 0, leaving one to train."""
    if eval_split <= 0 or rows < 2:
        return rows, 0
    held = min(max(1, round(rows * eval_split)), rows - 1)
    return rows - held, held


def estimate_steps(train_rows: int, config: JobConfig) -> tuple[int, int]:
    """(steps per epoch, total optimizer steps) the way HF Trainer counts them (without packing)."""
    t = config.training
    batches = math.ceil(train_rows / t.per_device_train_batch_size) if train_rows else 0
    per_epoch = max(batches // t.gradient_accumulation_steps, 1) if batches else 0
    total = t.max_steps if t.max_steps > 0 else math.ceil(per_epoch * t.num_train_epochs)
    return per_epoch, total


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
    """
    params = dims.get("params", 0)
    weight_bytes = {"float32": 4, "auto": 4, "bfloat16": 2, "float16": 2}[config.model.dtype]
    if config.method == "full":
        model_bytes = params * (2 * weight_bytes + 8)
    else:
        per_weight = 0.56 if config.method == "qlora" else weight_bytes
        model_bytes = params * per_weight + _lora_params(dims, config.lora.r) * 16
    t = config.training
    tokens = t.per_device_train_batch_size * t.max_length
    hidden, layers, vocab = dims.get("hidden_size", 0), dims.get("num_hidden_layers", 0), dims.get("vocab_size", 0)
    act_layers = 1 if t.gradient_checkpointing else max(layers, 1)
    activations = tokens * hidden * act_layers * 16 * weight_bytes / 4 + tokens * vocab * 4 * 2
    gb = 1024**3
    total = model_bytes + activations
    return {
        "model_gb": round(model_bytes / gb, 2),
        "activations_gb": round(activations / gb, 2),
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


def _row_list(numbers: Iterable[int]) -> str:
    numbers = list(numbers)
    shown = ", ".join(str(n) for n in numbers[:MAX_LISTED_ROWS])
    return shown + (f" (and {len(numbers) - MAX_LISTED_ROWS} more)" if len(numbers) > MAX_LISTED_ROWS else "")


def _check_data(ws: Workspace, resolved: ResolvedJob, job_dir: Path | None, report: ValidationReport) -> tuple[list[dict[str, Any]], str, dict[str, str]] | None:
    config = resolved.config
    if not resolved.datasets:
        report.error("no dataset: set one with --dataset NAME@VERSION (or dataset.ref)", field="dataset.ref")
        return None
    snap = resolved.datasets[0]
    from nocodetune.data.readers import read_file

    try:
        path = _dataset_path(ws, snap, job_dir)
        meta = json.loads((path.parent / "meta.json").read_text(encoding="utf-8")) if (path.parent / "meta.json").is_file() else {}
        split = meta.get("text_split") or "paragraph"
        table = read_file(path, fmt=snap.format, split=split, display=f"{snap.name}@{snap.version}")
    except NocodetuneError as exc:
        report.error(str(exc), field=exc.field or "dataset.ref")
        return None
    except (OSError, ValueError) as exc:
        report.error(f"cannot read dataset {snap.name}@{snap.version}: {exc}", field="dataset.ref")
        return None
    rows = table.rows[: config.dataset.max_rows] if config.dataset.max_rows else table.rows
    try:
        fmt, mapping = detect_format(table.columns, config.dataset.columns, config.dataset.format)
    except DataError as exc:
        report.error(f"{exc.message}" + (f" ({exc.hint})" if exc.hint else ""), field=exc.field)
        return None
    report.stats.update(dataset=f"{snap.name}@{snap.version}", rows=len(table.rows), used_rows=len(rows), format=fmt, columns=mapping)
    empty = [i for i, row in enumerate(rows, start=1) if is_empty_example(row, fmt, mapping)]
    if empty:
        roles = " / ".join(mapping[r] for r in FORMAT_ROLES[fmt][0])
        report.error(
            f"{len(empty)} of {len(rows)} rows have an empty {roles} after mapping: rows {_row_list(empty)}",
            field=f"dataset.columns.{FORMAT_ROLES[fmt][0][0]}",
        )
    skipped = set(empty)
    usable = [row for i, row in enumerate(rows, start=1) if i not in skipped]
    train, held = split_sizes(len(usable), config.training.eval_split)
    per_epoch, total = estimate_steps(train, config)
    report.stats.update(train_rows=train, eval_rows=held, steps_per_epoch=per_epoch, total_steps=total)
    if train == 0:
        report.error("no training rows left after removing empty rows and the eval split", field="dataset.ref")
    elif config.training.max_steps <= 0 and train < config.training.per_device_train_batch_size * config.training.gradient_accumulation_steps:
        report.warn(f"only {train} training rows for an effective batch of {config.training.per_device_train_batch_size * config.training.gradient_accumulation_steps}: one step per epoch", field="training.per_device_train_batch_size")
    return usable, fmt, mapping


def _check_model(resolved: ResolvedJob, report: ValidationReport) -> Any | None:
    """Resolve the model locally and load its tokenizer (no weights); None on failure."""
    from nocodetune.model_source import converted_dir, load_tokenizer, resolve_model

    try:
        model = resolve_model(resolved.config.model)
    except NocodetuneError as exc:
        report.error(str(exc), field=exc.field or "model.source")
        return None
    report.stats["model"] = model.display_name
    converted = converted_dir(model)
    if converted is not None and (converted / "config.json").is_file():
        dims = model_dims(converted, None)  # parsing a GGUF takes seconds; its converted copy does not
    else:
        dims = model_dims(model.path, model.gguf_file)
    if "params" in dims:
        report.stats["parameters"] = dims["params"]
        report.stats["memory"] = estimate_memory_gb(resolved.config, dims)
        _check_memory(report)
    try:
        return load_tokenizer(model)
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


def _check_tokens(tokenizer: Any, examples: list[dict[str, Any]], fmt: str, mapping: Mapping[str, str], config: JobConfig, report: ValidationReport) -> None:
    template = getattr(tokenizer, "chat_template", None)
    texts: list[str] = []
    for row in examples[:MAX_TOKENIZED_ROWS]:
        example = example_messages(row, fmt, mapping, config.dataset.system_prompt)
        if isinstance(example, str):
            texts.append(example)
        elif template:
            texts.append(tokenizer.apply_chat_template(example, tokenize=False))
        else:
            texts.append("\n".join(m["content"] for m in example))
    # A chat template already holds the special tokens; plain text gets the tokenizer's own.
    lengths = [len(ids) for ids in tokenizer(texts, add_special_tokens=fmt == "text")["input_ids"]] if texts else []
    long_rows = [i for i, n in enumerate(lengths, start=1) if n > config.training.max_length]
    if not lengths:
        return
    report.stats["tokens"] = {
        "examples": len(lengths),
        "sampled": len(examples) > MAX_TOKENIZED_ROWS,
        "mean": round(sum(lengths) / len(lengths), 1),
        "max": max(lengths),
        "over_max_length": len(long_rows),
        "max_length": config.training.max_length,
    }
    if long_rows:
        report.warn(
            f"{len(long_rows)} of {len(lengths)} examples are longer than training.max_length={config.training.max_length} tokens and will be truncated (longest {max(lengths)}): rows {_row_list(long_rows)}",
            field="training.max_length",
        )
    if fmt != "text" and not template:
        report.warn("the tokenizer has no chat template; prompts are joined with newlines", field="model.source")


def _check_parent(resolved: ResolvedJob, report: ValidationReport) -> None:
    parent_dir = resolved.lineage.parent_dir
    if not parent_dir:
        return
    outputs = Path(parent_dir) / "outputs"
    if not any((outputs / d).is_dir() and any((outputs / d).iterdir()) for d in ("model", "adapter")):
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
        examples, fmt, mapping = data
        _check_tokens(tokenizer, examples, fmt, mapping, config, report)
    _check_parent(resolved, report)
    check_resources(resolved, report, workspace=ws.root, job_dir=job_dir)  # after the data and memory stats it reads
    report.stats["method"] = config.method
    return report
