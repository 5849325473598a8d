"""Assemble a job's model: the base, then each parent's result in order, then the job's own.

The one place that answers "which weights make this job's model". Training asks for
the start point (everything up to the parent), held-out sampling uses the model in
training, and the model server and export ask for the whole lineage. Parents' adapters
are merged into the weights in order (the same arithmetic peft's `merge_adapter` does
when training samples), so a job served or exported answers what it answered in its
own after-training samples.
"""

from __future__ import annotations

import os

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from nocodetune.errors import ConfigError, ModelNotFoundError
from nocodetune.model_source import identity, load_tokenizer, materialize, resolve_model, section_for_identity
from nocodetune.modeling.lineage import TrainedOutput, ancestors, require_output, trained_output
from nocodetune.records.job import ResolvedJob, read_resolved
from nocodetune.records.schema import ModelSection
from nocodetune.records.weights import AppliedLayer, BaseIdentity, WeightsRecord, read_weights
from nocodetune.workspace import JobPaths


class Assembled(BaseModel):
    """A loaded model, its tokenizer, and what it is made of."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: Any
    tokenizer: Any
    base: BaseIdentity
    base_folder: str = Field(description="Folder the root weights were loaded from.")
    layers: list[AppliedLayer] = Field(default_factory=list)

    def weights_record(self, job: str | None, *produced: AppliedLayer) -> WeightsRecord:
        """The record of a folder holding this model plus what `job` trained on it (`produced`)."""
        return WeightsRecord(base=self.base, layers=[*self.layers, *produced], job=job)

    @property
    def description(self) -> str:
        chain = " + ".join(f"{layer.job} ({layer.kind})" for layer in self.layers)
        return f"{self.base.name}" + (f" + {chain}" if chain else "")


def torch_dtype(name: str) -> Any:
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_causal_lm(folder: Path, *, dtype: str, attn: str = "auto", trust_remote_code: bool = False, quantize_4bit: bool = False) -> Any:
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": torch_dtype(dtype), "trust_remote_code": trust_remote_code}
    if attn != "auto":
        kwargs["attn_implementation"] = attn
    if quantize_4bit:  # QLoRA: NF4 weights, computation in the run dtype (the runner checked CUDA + bitsandbytes)
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=torch_dtype(dtype)
        )
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", "0") or 0)}  # several processes: each its own GPU
    try:
        return AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # what transformers raises for unusable folders
        raise ModelNotFoundError(f"cannot load the model in {folder}: {exc}", file=str(folder), field="model.source") from exc


def _load_tokenizer_from(folder: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(folder))


def _has_tokenizer(folder: Path) -> bool:
    return (folder / "tokenizer_config.json").is_file()


def merge_adapter(model: Any, folder: Path) -> Any:
    """`model` with the peft adapter in `folder` merged into its weights."""
    from peft import PeftModel

    return PeftModel.from_pretrained(model, str(folder)).merge_and_unload()


def adapter_layer(job: str, folder: Path) -> AppliedLayer:
    """The record of an adapter folder as a layer: the job that trained it and the hash of its weights."""
    import hashlib

    weights = folder / "adapter_model.safetensors"
    return AppliedLayer(job=job, kind="adapter", sha256=hashlib.sha256(weights.read_bytes()).hexdigest() if weights.is_file() else None)


def name_base_in_adapter_config(folder: Path, base_name: str) -> None:
    """peft writes the base's local folder into adapter_config.json; name it by its public identity instead."""
    import json

    from nocodetune.records.io import write_json_atomic

    path = folder / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_name
    write_json_atomic(path, config)


def assemble(
    job: JobPaths | ResolvedJob,
    *,
    include_self: bool = True,
    dtype: str = "float32",
    attn: str = "auto",
    quantize_4bit: bool = False,
) -> Assembled:
    """The model of `job` (include_self) or the model it starts from (not include_self).

    A chain element with a full model (outputs/model, or outputs/merged which already
    holds everything below it) replaces everything before it; adapters are merged on
    top in order. Raises ModelNotFoundError naming the first job of the chain that has
    no trained output yet.
    """
    own_paths = job if isinstance(job, JobPaths) else None
    resolved = read_resolved(job) if isinstance(job, JobPaths) else job
    parents = ancestors(resolved, own_paths.root if own_paths else None)
    chain: list[tuple[str, TrainedOutput]] = []
    for paths, _ in parents:
        chain.append((paths.name, _parent_output(paths)))
    if include_self:
        if own_paths is None:
            raise ConfigError("assembling a job's own model needs its folder", field="job")
        chain.append((own_paths.name, require_output(own_paths)))

    start = max((i for i, (_, out) in enumerate(chain) if out.kind in ("model", "merged")), default=None)
    trust = resolved.config.model.trust_remote_code
    if start is None:
        root = parents[0][1] if parents else resolved
        located = resolve_model(root.config.model)
        folder = materialize(located)
        if quantize_4bit and chain:
            raise ConfigError("QLoRA cannot start from a parent's adapter (merging into 4-bit weights loses them)", field="method", hint="use method lora for this child job")
        model = load_causal_lm(folder, dtype=dtype, attn=attn, trust_remote_code=trust, quantize_4bit=quantize_4bit)
        tokenizer = load_tokenizer(located)
        base = identity(located, with_hash=True)
        layers: list[AppliedLayer] = []
        rest = chain
    else:
        name, out = chain[start]
        model = load_causal_lm(out.folder, dtype=dtype, attn=attn, trust_remote_code=trust)
        tokenizer = _load_tokenizer_from(out.folder)
        record = read_weights(out.folder)  # it lists every layer already in the folder, its own job's included
        base = record.base if record else BaseIdentity(name=str(out.folder), kind="folder")
        layers = list(record.layers) if record else [AppliedLayer(job=name, kind=out.kind)]
        folder = out.folder
        rest = chain[start + 1 :]
    for name, out in rest:
        model = merge_adapter(model, out.folder)
        if _has_tokenizer(out.folder):
            tokenizer = _load_tokenizer_from(out.folder)
        layers.append(adapter_layer(name, out.folder))
    model.eval()
    return Assembled(model=model, tokenizer=tokenizer, base=base, base_folder=str(folder), layers=layers)


def _parent_output(paths: JobPaths) -> TrainedOutput:
    found = trained_output(paths)
    if found is None:
        raise ModelNotFoundError(
            f"parent job {paths.name!r} has no trained model yet (no outputs/model, outputs/merged or outputs/adapter)",
            field="parent",
            file=str(paths.outputs),
            hint="run the parent job first",
        )
    return found


def assemble_folder(folder: Path, *, dtype: str = "float32", attn: str = "auto") -> Assembled:
    """A model folder or a portable adapter folder (exported, or copied from elsewhere).

    An adapter's base comes from its weights record (or peft's adapter_config.json); an
    adapter recorded as trained on top of other jobs cannot be rebuilt from its folder alone.
    """
    if (folder / "config.json").is_file():
        located = resolve_model(ModelSection(source=str(folder)))
        record = read_weights(folder)
        model = load_causal_lm(folder, dtype=dtype, attn=attn)
        base = record.base if record else identity(located)
        return Assembled(model=model.eval(), tokenizer=load_tokenizer(located), base=base, base_folder=str(folder), layers=record.layers if record else [])
    if not (folder / "adapter_config.json").is_file():
        raise ModelNotFoundError(f"{folder} holds neither a model (config.json) nor a LoRA adapter (adapter_config.json)", file=str(folder), field="model.source")
    record = read_weights(folder)
    below = record.layers[:-1] if record else []  # the last layer is this adapter itself
    if below:
        names = ", ".join(layer.job for layer in below)
        raise ModelNotFoundError(
            f"the adapter in {folder} was trained on top of other adapters ({names}), so its base alone is not its model",
            file=str(folder), field="model.source", hint="serve the job itself, or export it merged",
        )
    if record is not None:
        section = section_for_identity(record.base.name)
    else:
        import json

        named = json.loads((folder / "adapter_config.json").read_text(encoding="utf-8")).get("base_model_name_or_path")
        if not named:
            raise ModelNotFoundError("the adapter does not name its base model", file=str(folder / "adapter_config.json"), field="model.source")
        section = section_for_identity(named)
    located = resolve_model(section)
    model = merge_adapter(load_causal_lm(materialize(located), dtype=dtype, attn=attn), folder)
    tokenizer = _load_tokenizer_from(folder) if _has_tokenizer(folder) else load_tokenizer(located)
    layers = [AppliedLayer(job=folder.name, kind="adapter")]
    return Assembled(model=model.eval(), tokenizer=tokenizer, base=identity(located, with_hash=True), base_folder=str(located.path), layers=layers)
