"""The transformers backend: a Hugging Face causal LM stepped as one left-padded batch.

The running batch keeps one KV cache, left-padded to a common length, with an attention
mask and per-sequence position ids. New requests are prefilled together and their caches
merged into the running batch; finished sequences are dropped from it, and cache columns
no remaining row uses are trimmed.

Precision (CPU): decode is memory-bound, so smaller weights are faster. `bf16` casts the
weights (the CPU's AMX units do bf16 matmuls); `int8` replaces every linear layer with
torch's dynamic int8 quantisation (per-channel weights, activations quantised per call).
bench/serve_throughput.py measures speed and greedy agreement with fp32 for each; the
fastest with high agreement is `CPU_DEFAULT_PRECISION`.
"""

from __future__ import annotations

import logging
import warnings
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import torch

    from nocodetune.serving.backend import EngineBackend
    from nocodetune.serving.engine import EngineMetrics

log = logging.getLogger(__name__)

Precision = Literal["fp32", "bf16", "int8"]

# Measured by bench/serve_throughput.py on the default model (bench/RESULTS.md, "Serving on
# CPU"): the fastest option whose greedy outputs agree with fp32 on at least 90% of the prompts.
# bf16 is 1.2x (1 client) / 1.8x (8 clients) faster but agrees on 60%, int8 is ~2x faster and
# agrees on 5%: neither qualifies, so fp32 stays the default; `--precision bf16` trades
# agreement for speed. (GGUF files go to llama.cpp instead.)
CPU_DEFAULT_PRECISION: Precision = "fp32"


class HFVocabulary:
    """A transformers tokenizer as a `serving.backend.Vocabulary`."""

    def __init__(self, tokenizer: Any, *, eos_ids: frozenset[int], vocab_size: int) -> None:
        self.tokenizer = tokenizer
        self.eos_ids = eos_ids
        self.vocab_size = vocab_size
        self.chat_template: str | None = tokenizer.get_chat_template() if getattr(tokenizer, "chat_template", None) else None
        self.special_tokens = {k: v for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
        self._grammar_vocab: Any = None

    def encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def token_bytes(self, token: int) -> bytes:
        vocab = self.grammar_vocab().decoded_vocab
        return vocab[token] if 0 <= token < len(vocab) else b""

    def grammar_vocab(self) -> Any:
        if self._grammar_vocab is None:
            import xgrammar as xgr

            self._grammar_vocab = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.vocab_size, stop_token_ids=sorted(self.eos_ids))
        return self._grammar_vocab


class TransformersRunner:
    """A `serving.backend.ModelRunner` over a transformers causal LM."""

    kv_capacity = None  # the cache grows with the batch

    def __init__(self, model: Any) -> None:
        self.model = model
        self.device = next(model.parameters()).device
        self.vocab_size = _vocab_size(model)
        self.context_window = _context_window(model)
        self.embed_window = self.context_window
        self.embedding_size = int(_text_config(model).hidden_size)
        self._cache_kw = _cache_kwarg(model)
        self.cache: Any = None
        self.mask: Any = None  # [B, T] 1 where the cache holds a real token
        self.positions: Any = None  # [B] position id of the next token fed

    def prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        import torch
        from transformers import DynamicCache

        width = max(len(p) for p in prompts)
        ids = torch.zeros((len(prompts), width), dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1, **{self._cache_kw: DynamicCache()})
        self._merge(_out_cache(out), mask, mask.sum(-1))
        return out.logits[:, -1, :]

    def decode(self, tokens: list[int]) -> torch.Tensor:
        import torch

        attn = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        out = self.model(
            input_ids=torch.tensor(tokens, dtype=torch.long, device=self.device)[:, None],
            attention_mask=attn,
            position_ids=self.positions[:, None],
            use_cache=True,
            **{self._cache_kw: self.cache},
        )
        self.cache = _out_cache(out)
        self.mask = attn
        self.positions = self.positions + 1
        return out.logits[:, -1, :]

    def keep(self, rows: list[int]) -> None:
        """Keep these rows and trim cache columns no remaining row uses."""
        import torch
        from transformers import DynamicCache

        if not rows:
            self.cache, self.mask, self.positions = None, None, None
            return
        idx = torch.tensor(rows, device=self.device)
        mask = self.mask.index_select(0, idx)
        first = int(mask.any(0).nonzero()[0])
        self.cache = DynamicCache([(l.keys.index_select(0, idx)[:, :, first:], l.values.index_select(0, idx)[:, :, first:]) for l in self.cache.layers])
        self.mask = mask[:, first:]
        self.positions = self.positions.index_select(0, idx)

    def _merge(self, cache: Any, mask: Any, positions: Any) -> None:
        import torch
        from torch.nn.functional import pad
        from transformers import DynamicCache

        # zero the padding slots: whatever the model wrote there must never leak into attention
        padding = (mask == 0)[:, None, :, None]
        new_kv = [(layer.keys.masked_fill(padding, 0), layer.values.masked_fill(padding, 0)) for layer in cache.layers]
        if self.cache is None:
            self.cache, self.mask, self.positions = DynamicCache(new_kv), mask, positions
            return
        old_kv = [(layer.keys, layer.values) for layer in self.cache.layers]
        width = max(self.mask.shape[1], mask.shape[1])

        def left_pad(t: torch.Tensor, dim_from_end: int) -> torch.Tensor:
            missing = width - t.shape[-dim_from_end]
            if missing == 0:
                return t
            spec = [0, 0] * (dim_from_end - 1) + [missing, 0]
            return pad(t, spec)

        merged = [(torch.cat([left_pad(ok, 2), left_pad(nk, 2)]), torch.cat([left_pad(ov, 2), left_pad(nv, 2)])) for (ok, ov), (nk, nv) in zip(old_kv, new_kv)]
        self.cache = DynamicCache(merged)
        self.mask = torch.cat([left_pad(self.mask, 1), left_pad(mask, 1)])
        self.positions = torch.cat([self.positions, positions])

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """Mean-pooled last hidden states (after the final norm), L2-normalised, 8 inputs a pass."""
        import torch

        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        body = getattr(base, base.base_model_prefix, None) or base
        vectors: list[list[float]] = []
        for start in range(0, len(inputs), 8):
            chunk = inputs[start : start + 8]
            width = max(len(x) for x in chunk)
            ids = torch.zeros((len(chunk), width), dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, x in enumerate(chunk):
                ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
                mask[row, : len(x)] = 1
            hidden = body(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state.float().cpu()
            weights = mask[:, :, None].float()
            pooled = (hidden * weights).sum(1) / weights.sum(1)
            vectors += torch.nn.functional.normalize(pooled, dim=-1).tolist()
        return vectors


def apply_precision(model: Any, precision: Precision) -> Any:
    """The model in `precision`: fp32 as loaded, bf16 weights, or int8 dynamic quantisation
    of every linear layer (a LoRA adapter is merged first, so its layers are quantised too)."""
    import torch

    if precision == "fp32":
        return model.float()
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model = model.float()
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's eager quantisation warns that it moves to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8).eval()


def resolve_precision(requested: str, device: str) -> Precision | None:
    """The precision to serve with; None keeps what the loader chose (a GPU's own default)."""
    if requested == "auto":
        return CPU_DEFAULT_PRECISION if device == "cpu" else None
    if requested == "int8" and device != "cpu":
        from nocodetune.errors import ConfigError

        raise ConfigError("precision int8 (dynamic quantisation) runs on the CPU only", field="precision", hint="use bf16 or fp32 on a GPU")
    return requested  # type: ignore[return-value]


def transformers_backend(
    model: Any,
    tokenizer: Any,
    *,
    precision: str = "auto",
    max_batch_size: int = 16,
    max_queue: int = 64,
    metrics: EngineMetrics | None = None,
) -> EngineBackend:
    """Wrap a loaded model and tokenizer (serving.loader) as a serving backend."""
    from nocodetune.serving.backend import EngineBackend
    from nocodetune.serving.engine import GenerationEngine
    from nocodetune.serving.fields import TRANSFORMERS_FIELDS

    device = next(model.parameters()).device.type
    chosen = resolve_precision(precision, device)
    if chosen is not None:
        model = apply_precision(model, chosen)
    dtype = str(next(model.parameters()).dtype).removeprefix("torch.")
    runner = TransformersRunner(model)
    vocab = HFVocabulary(tokenizer, eos_ids=_eos_ids(model, tokenizer), vocab_size=runner.vocab_size)
    engine = GenerationEngine(runner, vocab, max_batch_size=max_batch_size, max_queue=max_queue, metrics=metrics)
    details = {"backend": "transformers", "precision": chosen or dtype, "device": device}
    return EngineBackend(name="transformers", fields=TRANSFORMERS_FIELDS, engine=engine, vocab=vocab, details=details)


def _eos_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    ids: set[int] = set()
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(int(i) for i in eos)
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return frozenset(ids)


def _cache_kwarg(model: Any) -> str:
    """transformers 5.2x renamed `past_key_values` to `cache`; speak whichever this version knows."""
    import inspect

    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wraps the forward
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _out_cache(out: Any) -> Any:
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def _text_config(model: Any) -> Any:
    return model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config


def _vocab_size(model: Any) -> int:
    embeddings = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(embeddings, "weight", None)
    if weight is not None and hasattr(weight, "shape"):
        return int(weight.shape[0])
    return int(_text_config(model).vocab_size)


def _context_window(model: Any) -> int:
    config = _text_config(model)
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, key, None)
        if isinstance(value, int) and value > 0:
            return value
    return 2048
