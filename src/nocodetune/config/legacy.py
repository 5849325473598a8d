"""Import the original NoCodeTune `job_args.json` into jobs (a base + overrides each).

The original file is a JSON list of jobs, `{job_name, parent_job_name, base_job_name,
args: {train_type, training_args, peft_args, lora_configs}}`, parents before or after
their children; a single job's args object on its own is read too. `train_type` named
the method (full_train, peft_train), and the args passed Hugging Face `TrainingArguments`
and peft `LoraConfig` keys through as they were. Our schema keeps those field names where
it can, so most keys map one to one. Keys that only say where to write or how to report
are dropped with a note (the job folder decides that now); any other key is refused by
name rather than silently ignored, because a dropped setting would change what the job
trains. Module names of another model family are translated at import
(`jobs.create.import_legacy_jobs`, which knows the target model).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from pydantic import BaseModel, Field

from nocodetune.config.overrides import validate_config
from nocodetune.records.schema import LoraSection, TrainingSection
from nocodetune.errors import ConfigError

TRAIN_TYPES = {"full_train": "full_train", "peft_train": "lora_train", "lora_train": "lora_train", "qlora_train": "qlora_train"}

# training_args keys whose name differs from ours.
TRAINING_RENAMES = {"max_seq_length": "max_length", "model_max_length": "max_length"}
# training_args keys that do not change what is learned: dropped, with the reason.
TRAINING_IGNORED = {
    **dict.fromkeys(
        ("output_dir", "logging_dir", "overwrite_output_dir", "cache_dir", "resume_from_checkpoint"),
        "paths are decided by the job folder (outputs/, logs/)",
    ),
    **dict.fromkeys(
        ("report_to", "run_name", "disable_tqdm", "logging_first_step", "logging_strategy", "log_level"),
        "progress is reported in logs/events.jsonl",
    ),
    **dict.fromkeys(("push_to_hub", "hub_model_id", "hub_token", "hub_strategy", "hub_private_repo"), "NoCodeTune never uploads to a hub"),
    **dict.fromkeys(("do_train", "do_eval", "do_predict"), "a job always trains, and evaluates when training.eval_split > 0"),
    **dict.fromkeys(
        ("save_strategy", "evaluation_strategy", "eval_strategy"),
        "checkpoints and evaluations happen every epoch, or every training.save_steps / training.eval_steps when set",
    ),
    **dict.fromkeys(
        ("dataloader_num_workers", "local_rank", "ddp_find_unused_parameters", "save_safetensors", "remove_unused_columns", "use_cpu", "no_cuda"),
        "runtime detail chosen by NoCodeTune for the hardware",
    ),
}
PEFT_RENAMES = {"lora_alpha": "alpha", "lora_dropout": "dropout"}
PEFT_IGNORED = {
    "task_type": "always CAUSAL_LM",
    "peft_type": "given by method",
    "inference_mode": "set by NoCodeTune",
    "base_model_name_or_path": "the model is model.source",
    "revision": "the model is model.source",
}
DATASET_KEYS = ("dataset_path", "data_path", "train_file", "data_file", "dataset_file", "train_data", "dataset")
TOP_IGNORED = {"output_dir": "paths are decided by the job folder"}
ENTRY_KEYS = ("job_name", "parent_job_name", "base_job_name", "args")


class LegacyImport(BaseModel):
    """A legacy job mapped onto our format."""

    name: str | None = Field(None, description="job_name, when the file names the job.")
    parent: str | None = Field(None, description="parent_job_name: the job this one continues from.")
    base: str
    overrides: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list, description="Keys dropped on purpose, and why.")
    dataset_file: str | None = Field(None, description="Data file the legacy job named, as written there.")
    dataset_key: str | None = None


def _section(data: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = data.get(key) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {key} must be an object of settings, got {type(value).__name__}", field=key, file=where)
    return value


def _map_keys(
    section: Mapping[str, Any],
    *,
    prefix: str,
    valid: set[str],
    renames: Mapping[str, str],
    ignored: Mapping[str, str],
    out: dict[str, Any],
    notes: list[str],
    unmapped: list[str],
) -> None:
    for key, value in section.items():
        target = renames.get(key, key)
        if key in ignored:
            notes.append(f"{prefix}.{key} ignored: {ignored[key]}")
        elif target in valid:
            out[target] = value
        else:
            unmapped.append(f"{prefix}.{key}")


def map_legacy(data: Mapping[str, Any], where: str = "job_args.json") -> LegacyImport:
    """Map a parsed job_args.json; refuses (ConfigError) every key it cannot map, all at once."""
    notes: list[str] = []
    unmapped: list[str] = []
    train_type = data.get("train_type")
    if train_type not in TRAIN_TYPES:
        raise ConfigError(
            f"{where}: train_type {train_type!r} is not one of {', '.join(TRAIN_TYPES)}", field="train_type", file=where
        )
    base = TRAIN_TYPES[train_type]

    training: dict[str, Any] = {}
    _map_keys(
        _section(data, "training_args", where),
        prefix="training_args",
        valid=set(TrainingSection.model_fields),
        renames=TRAINING_RENAMES,
        ignored=TRAINING_IGNORED,
        out=training,
        notes=notes,
        unmapped=unmapped,
    )
    lora: dict[str, Any] = {}
    for key in ("peft_args", "lora_configs"):
        _map_keys(
            _section(data, key, where),
            prefix=key,
            valid=set(LoraSection.model_fields),
            renames=PEFT_RENAMES,
            ignored=PEFT_IGNORED,
            out=lora,
            notes=notes,
            unmapped=unmapped,
        )
    if lora and base == "full_train":
        notes.append("peft settings kept in lora.* but unused: train_type is full_train")

    overrides: dict[str, Any] = {}
    if training:
        overrides["training"] = training
    if lora:
        overrides["lora"] = lora
    if data.get("model_name_or_path"):
        overrides["model"] = {"source": str(data["model_name_or_path"])}
    if isinstance(data.get("description"), str):
        overrides["description"] = data["description"]

    dataset_key = next((k for k in DATASET_KEYS if data.get(k)), None)
    known = {"train_type", "training_args", "peft_args", "lora_configs", "model_name_or_path", "description", *DATASET_KEYS}
    for key in data:
        if key in TOP_IGNORED:
            notes.append(f"{key} ignored: {TOP_IGNORED[key]}")
        elif key not in known:
            unmapped.append(key)
    if unmapped:
        raise ConfigError(
            f"{where}: cannot map {len(unmapped)} key(s): {', '.join(unmapped)}",
            field=unmapped[0],
            file=where,
            hint="remove them from the file, or set their NoCodeTune equivalents after import with `nocodetune job clone ... --set`",
        )
    validate_config(overrides, where=where)
    return LegacyImport(
        base=base,
        overrides=overrides,
        notes=notes,
        dataset_file=str(data[dataset_key]) if dataset_key else None,
        dataset_key=dataset_key,
    )


def map_entry(entry: Mapping[str, Any], where: str) -> LegacyImport:
    """One job of the file: `{job_name, parent_job_name, base_job_name, args}`, or a bare args object."""
    if "args" not in entry:  # one job's settings, perhaps with its name beside them
        names = {k: entry[k] for k in ("job_name", "parent_job_name") if k in entry}
        entry = {k: v for k, v in entry.items() if k not in names}
        entry = {"args": entry, **names}
    unknown = [k for k in entry if k not in ENTRY_KEYS]
    if unknown:
        raise ConfigError(f"{where}: cannot map key(s) {', '.join(unknown)} of a job entry", field=unknown[0], file=where)
    args = entry.get("args")
    if not isinstance(args, dict):
        raise ConfigError(f"{where}: args must be an object of settings", field="args", file=where)
    if "train_type" not in args and entry.get("base_job_name") in TRAIN_TYPES:
        args = {**args, "train_type": entry["base_job_name"]}
    mapped = map_legacy(args, where)
    name, parent = entry.get("job_name"), entry.get("parent_job_name")
    for key, value in (("job_name", name), ("parent_job_name", parent)):
        if value is not None and not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a name, got {value!r}", field=key, file=where)
    return mapped.model_copy(update={"name": name, "parent": parent or None})


def in_parent_order(entries: list[LegacyImport], where: str) -> list[LegacyImport]:
    """Entries reordered so that every parent named in the file comes before its children."""
    by_name = {e.name: e for e in entries if e.name}
    ordered: list[LegacyImport] = []
    placed: set[int] = set()

    def place(entry: LegacyImport, trail: tuple[str, ...]) -> None:
        if id(entry) in placed:
            return
        if entry.parent in by_name:
            if entry.parent in trail:
                raise ConfigError(f"{where}: jobs name each other as parents: {' -> '.join([*trail, entry.parent])}", field="parent_job_name", file=where)
            place(by_name[entry.parent], (*trail, entry.name or "?"))
        placed.add(id(entry))
        ordered.append(entry)

    for entry in entries:
        place(entry, (entry.name or "?",))
    return ordered


def load_legacy(path: Path) -> list[LegacyImport]:
    """Read and map a job_args.json file (a list of jobs, or one job); errors name the file (and line for bad JSON)."""
    where = path.name
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", file=str(path)) from None
    except (json.JSONDecodeError, RecursionError) as exc:
        line = f" at line {exc.lineno}: {exc.msg}" if isinstance(exc, json.JSONDecodeError) else ": nested too deeply"
        raise ConfigError(f"{where} is not valid JSON{line}", file=where) from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data or not all(isinstance(e, dict) for e in data):
        raise ConfigError(f"{where} must hold a list of jobs (objects with job_name and args) or one job's settings", file=where)
    entries = [map_entry(e, f"{where} job {i + 1}" + (f" ({e['job_name']})" if isinstance(e.get("job_name"), str) else "")) for i, e in enumerate(data)]
    names = [e.name for e in entries if e.name]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{where} names job(s) {', '.join(duplicates)} more than once", field="job_name", file=where)
    return in_parent_order(entries, where)
