"""`gguf`: the job's merged model as one GGUF file for llama.cpp, Ollama and LM Studio.

Written with the `gguf` library (the one llama.cpp ships): its `GGUFWriter`, its tensor
name map (`get_tensor_name_map`), `SpecialVocab` for merges, special tokens and the chat
template, and its quantisers (`gguf.quants`). The steps follow what llama.cpp's
`convert_hf_to_gguf.py` does for the Llama family, written here for the models
NoCodeTune trains:

- the model is first written as a merged Hugging Face folder (`export.merged`), and the
  GGUF is converted from that folder, so a GGUF holds exactly what `merged` would;
- Q and K projections are permuted from Hugging Face's rotary layout (halves) to
  llama.cpp's (interleaved pairs), as llama.cpp's `LlamaModel.permute` does; transformers
  undoes it when it reads the file back (`LlamaTensorProcessor`);
- 1-D tensors (norms) stay F32; matrices take the requested type; with q4_0 the token
  embedding (which is also the output head when tied) is written Q8_0; a matrix whose
  rows do not divide into quantisation blocks falls back to F16 (llama.cpp does the same);
- the vocabulary is written as byte-level BPE (`tokenizer.ggml.model = gpt2`) with token
  types (control / user-defined / normal), merges, special token ids, whether BOS/EOS
  are added (as the tokenizer actually does), the chat template, and an end-of-turn
  token when the turn ends with a token other than EOS (llama.cpp stops on both).

Architectures transformers cannot read back (or this writer does not map) are refused
by name before any work (`export.preflight`).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nocodetune.errors import ConfigError
from nocodetune.export.common import ExportResult, Progress, model_card, no_progress
from nocodetune.export.preflight import (
    GGUF_ARCHITECTURES,
    check_gguf_architecture,
    check_quant,
    tokenizer_refusal,
)
from nocodetune.records.weights import WeightsRecord
from nocodetune.workspace import JobPaths

USAGE = """
- llama.cpp: `llama-cli -m FILE -cnv` or `llama-server -m FILE`
- Ollama: `nocodetune job export JOB --format ollama` writes this file with a Modelfile
- transformers: `AutoModelForCausalLM.from_pretrained("FOLDER", gguf_file="FILE")`
- NoCodeTune: `nocodetune server start model --model PATH/FILE`
"""

_EMBEDDING_NAMES = ("token_embd.weight", "output.weight")


def _qtype(quant: str) -> Any:
    from gguf import GGMLQuantizationType

    return GGMLQuantizationType[quant.upper()]


def _file_type(quant: str) -> Any:
    from gguf import LlamaFileType

    return {
        "f32": LlamaFileType.ALL_F32,
        "f16": LlamaFileType.MOSTLY_F16,
        "bf16": LlamaFileType.MOSTLY_BF16,
        "q8_0": LlamaFileType.MOSTLY_Q8_0,
        "q4_0": LlamaFileType.MOSTLY_Q4_0,
        "q4_k": LlamaFileType.MOSTLY_Q4_K_M,
    }[quant]


def tensor_type(gguf_name: str, shape: tuple[int, ...], quant: str) -> Any:
    """The GGML type a tensor is written in for a file of type `quant`."""
    from gguf import GGMLQuantizationType as T
    from gguf.constants import GGML_QUANT_SIZES

    if len(shape) < 2:
        return T.F32  # norms: tiny, and precision matters
    if quant in ("f32", "f16", "bf16"):
        return _qtype(quant)
    target = T.Q8_0 if quant == "q4_0" and gguf_name in _EMBEDDING_NAMES else _qtype(quant)
    if shape[-1] % GGML_QUANT_SIZES[target][0] != 0:
        return T.F16
    return target


def permute_rotary(weights: Any, n_head: int, n_head_kv: int | None = None) -> Any:
    """Hugging Face's rotary layout (two halves per head) → llama.cpp's (interleaved pairs)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2).reshape(weights.shape)


def _rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    return float(theta if theta is not None else getattr(config, "rope_theta", 10000.0))


def check_config(config: Any) -> None:
    """Refuse what the file could not say (or transformers could not read back), by name."""
    check_gguf_architecture(config.model_type)
    params = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    rope_type = params.get("rope_type", params.get("type", "default")) if isinstance(params, dict) else "default"
    if rope_type not in ("default", None):
        raise ConfigError(f"GGUF export does not support rope scaling {rope_type!r} yet", field="format", hint="export --format merged instead")
    for flag in ("attention_bias", "mlp_bias"):
        if getattr(config, flag, False):
            raise ConfigError(f"GGUF export does not support Llama models with {flag} yet (transformers reads no biases back from GGUF)", field="format")


def pre_tokenizer_name(tokenizer_json: dict[str, Any], base_pre: str | None) -> str:
    """`tokenizer.ggml.pre`: how llama.cpp splits text before BPE, named as llama.cpp names it.

    A tokenizer read from a GGUF base keeps that file's name. Otherwise the pre-tokenizer's
    own description decides: plain byte-level is GPT-2's split; a regex split is named by
    the table transformers uses to read GGUF files back (whose names are llama.cpp's).
    """
    if base_pre:
        return base_pre
    pre = tokenizer_json.get("pre_tokenizer") or {}
    steps = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt-2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"  # GPT-2's split, digits one by one (SmolLM's tokenizer)
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        from transformers.integrations.gguf.gguf_tokenizer_mapping import (
            GGUF_PRE_TOKENIZER_SPLITS,
        )

        pattern = (steps[0].get("pattern") or {}).get("Regex")
        for name, regex in GGUF_PRE_TOKENIZER_SPLITS.items():
            if regex == pattern:
                return name
    raise ConfigError(
        f"GGUF export does not recognise this tokenizer's pre-tokenizer ({' + '.join(str(k) for k in kinds)}), so llama.cpp would split text differently",
        field="format", hint="export --format merged instead",
    )


def base_gguf_pre(weights: WeightsRecord) -> str | None:
    """`tokenizer.ggml.pre` of the root base when it is a GGUF file (the tokenizer came from it)."""
    if weights.base.kind not in ("default", "gguf"):
        return None
    from gguf import GGUFReader

    from nocodetune.model_source import resolve_model, section_for_identity

    located = resolve_model(section_for_identity(weights.base.name))
    if not located.gguf_file:
        return None
    field = GGUFReader(str(located.path / located.gguf_file)).fields.get("tokenizer.ggml.pre")
    return str(field.contents()) if field is not None else None


def _vocab(tokenizer: Any, n_vocab: int) -> tuple[list[str], list[int]]:
    """Tokens in id order with llama.cpp's token types (as convert_hf_to_gguf's `get_vocab_base`)."""
    from gguf import TokenType

    reverse = {i: t for t, i in tokenizer.get_vocab().items()}
    added = tokenizer.added_tokens_decoder
    tokens: list[str] = []
    types: list[int] = []
    for i in range(n_vocab):
        if i not in reverse:
            tokens.append(f"[PAD{i}]")
            types.append(TokenType.USER_DEFINED)
        elif i in added:
            tokens.append(added[i].content)
            types.append(TokenType.CONTROL if added[i].special else TokenType.USER_DEFINED)
        else:
            tokens.append(reverse[i])
            types.append(TokenType.NORMAL)
    return tokens, types


def _adds(tokenizer: Any) -> tuple[bool, bool]:
    """Whether the tokenizer adds BOS / EOS to a plain text (what it does, not what a config says)."""
    ids = tokenizer("a")["input_ids"]
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    return bool(ids) and bos is not None and ids[0] == bos, bool(ids) and eos is not None and ids[-1] == eos and len(ids) > 1


def _eos_ids(folder: Path) -> list[int]:
    try:
        value = json.loads((folder / "generation_config.json").read_text(encoding="utf-8")).get("eos_token_id")
    except (OSError, ValueError):
        return []
    return [value] if isinstance(value, int) else [v for v in value or [] if isinstance(v, int)]


def _tensors(folder: Path) -> list[tuple[str, Any]]:
    """(name, float32 numpy array) of every tensor in the folder's safetensors files, in file order."""
    from safetensors import safe_open

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise ConfigError(f"{folder} holds no safetensors weights", file=str(folder))
    out = []
    for file in files:
        with safe_open(str(file), framework="pt") as fh:
            for key in fh.keys():
                out.append((key, fh.get_tensor(key).float().numpy()))
    return out


def write_gguf(
    folder: Path,
    out_file: Path,
    quant: str,
    *,
    name: str,
    weights: WeightsRecord | None = None,
    base_pre: str | None = None,
    progress: Progress = no_progress,
    span: tuple[float, float] = (0.0, 1.0),
) -> dict[str, str]:
    """Convert the HF model folder `folder` into the GGUF file `out_file`; return facts for the record."""
    import gguf
    from gguf import quants
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(str(folder))
    check_config(config)
    check_quant(quant)
    tokenizer_json = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    refusal = tokenizer_refusal(tokenizer_json)
    if refusal:
        raise ConfigError(f"GGUF export cannot write this tokenizer: {refusal}", field="format", hint="export --format merged instead")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    arch = GGUF_ARCHITECTURES[config.model_type]

    writer = gguf.GGUFWriter(str(out_file), arch)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(name)
    n_head, n_kv = config.num_attention_heads, config.num_key_value_heads or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // n_head
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_kv)
    writer.add_rope_freq_base(_rope_theta(config))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_dimension_count(head_dim)
    if head_dim != config.hidden_size // n_head:
        writer.add_key_length(head_dim)
        writer.add_value_length(head_dim)
    writer.add_file_type(_file_type(quant))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

    # -- vocabulary -------------------------------------------------------------------
    n_vocab = max(config.vocab_size, max(tokenizer.get_vocab().values()) + 1)
    tokens, types = _vocab(tokenizer, n_vocab)
    pre = pre_tokenizer_name(tokenizer_json, base_pre)
    writer.add_vocab_size(n_vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    special = gguf.SpecialVocab(folder, load_merges=True, n_vocab=n_vocab)
    add_bos, add_eos = _adds(tokenizer)
    special.add_special_token["bos"] = add_bos
    special.add_special_token["eos"] = add_eos
    if tokenizer.chat_template and not special.chat_template:
        special.chat_template = tokenizer.chat_template
    special.add_to_gguf(writer, quiet=True)
    eos = special.special_token_ids.get("eos")
    end_of_turn = next((i for i in _eos_ids(folder) if i != eos), None)
    if end_of_turn is not None:
        writer.add_eot_token_id(end_of_turn)

    # -- lineage, for whoever finds the file later -------------------------------------
    if weights is not None:
        writer.add_string("nocodetune.job", weights.job or name)
        writer.add_string("nocodetune.base", weights.base.name)
        if weights.base.sha256:
            writer.add_string("nocodetune.base_sha256", weights.base.sha256)
        if weights.layers:
            writer.add_array("nocodetune.layers", [f"{layer.job}:{layer.kind}:{layer.sha256 or ''}" for layer in weights.layers])

    # -- tensors ----------------------------------------------------------------------
    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    counts: Counter[str] = Counter()
    tensors = _tensors(folder)
    start, end = span
    for i, (hf_name, data) in enumerate(tensors):
        if hf_name.endswith("rotary_emb.inv_freq") or (tied and hf_name == "lm_head.weight"):
            continue  # recomputed by every reader / the same matrix as the embedding
        new_name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if new_name is None:
            raise ConfigError(f"GGUF export does not know where tensor {hf_name!r} goes in a {arch} GGUF", field="format", hint="export --format merged instead")
        if new_name.endswith(("attn_q.weight", "attn_q.bias")):
            data = permute_rotary(data, n_head, n_head)
        elif new_name.endswith(("attn_k.weight", "attn_k.bias")):
            data = permute_rotary(data, n_head, n_kv)
        qtype = tensor_type(new_name, tuple(data.shape), quant)
        packed = quants.quantize(data, qtype)
        writer.add_tensor(new_name, packed, raw_dtype=qtype)
        counts[qtype.name] += 1
        progress("converting", start + (end - start) * 0.8 * (i + 1) / len(tensors), f"{new_name} → {qtype.name}")
    progress("writing", start + (end - start) * 0.85, f"writing {out_file.name}")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file(progress=False)
    writer.close()
    return {
        "gguf_file": out_file.name,
        "quant": quant,
        "tensor_types": ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
        "tokenizer_pre": pre,
        "stop_token_ids": ", ".join(str(i) for i in [eos, end_of_turn] if i is not None),
    }


def gguf_file_name(job: str, quant: str) -> str:
    return f"{job}-{quant}.gguf"


def write_job_gguf(
    paths: JobPaths,
    stage: Path,
    quant: str,
    progress: Progress = no_progress,
    *,
    before_convert: Callable[[Any, str], None] | None = None,
) -> tuple[ExportResult, Any]:
    """The job's merged model as `stage/<job>-<quant>.gguf`; also returns the tokenizer.

    `before_convert(tokenizer, gguf_file_name)` runs once the model is assembled and before
    the slow part, so a format built on the GGUF (Ollama) can refuse early.
    """
    from nocodetune.export.merged import save_merged
    from nocodetune.modeling.assemble import assemble

    progress("loading", 0.05, "assembling the model: base, then each parent's training, then this job's")
    built = assemble(paths, include_self=True, dtype="float32")
    check_config(built.model.config)
    weights = built.weights_record(paths.name)
    file_name = gguf_file_name(paths.name, quant)
    if before_convert is not None:
        before_convert(built.tokenizer, file_name)
    stage.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".merged-", dir=stage.parent) as tmp:
        folder = Path(tmp)
        progress("merging", 0.25, f"writing the merged model ({built.description})")
        save_merged(built.model, built.tokenizer, folder, weights, dtype="float32")
        del built.model
        out_file = stage / file_name
        details = write_gguf(folder, out_file, quant, name=paths.name, weights=weights, base_pre=base_gguf_pre(weights), progress=progress, span=(0.3, 0.95))
    return ExportResult(weights=weights, details=details), built.tokenizer


def export_gguf(paths: JobPaths, stage: Path, quant: str, progress: Progress = no_progress) -> ExportResult:
    result, _ = write_job_gguf(paths, stage, quant, progress)
    file = result.details["gguf_file"]
    (stage / "README.md").write_text(
        model_card(paths, result.weights, kind=f"GGUF {quant}", usage=USAGE.replace("FILE", file), extra=f"Tensor types: {result.details['tensor_types']}."),
        encoding="utf-8",
    )
    return result
