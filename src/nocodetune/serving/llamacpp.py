"""The llama.cpp backend: a GGUF file stepped by `llama_decode` with one sequence id per request.

Chosen for GGUF models when `llama_cpp` (llama-cpp-python, the `llamacpp` extra) is
importable. llama.cpp reads the GGUF's quantised weights as they are (no conversion, no
dequantisation) and its CPU kernels decode several times faster than the transformers
engine in fp32 (bench/RESULTS.md).

The KV cache is one unified llama.cpp cache of `kv_tokens` cells shared by all sequences;
the engine admits a request only when its prompt + max_tokens fit next to what running
requests reserved, so a decode step never runs out of cells. Sampling, logprobs and grammars
stay in the shared engine: this module only turns token batches into logits.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from nocodetune.serving.backend import EngineBackend
    from nocodetune.serving.engine import EngineMetrics

log = logging.getLogger(__name__)

DEFAULT_KV_TOKENS = 16384  # cells of the shared KV cache (~380 MB for the default model)
_EMBED_WINDOW = 2048  # longest embeddings input: the embedding context holds one whole input per pass
_BATCH_TOKENS = 2048  # tokens per llama_decode call while prefilling


def available() -> bool:
    """Whether llama-cpp-python can be imported (the `llamacpp` extra is installed)."""
    try:
        import llama_cpp  # noqa: F401
    except Exception:  # noqa: BLE001 - a broken native library counts as absent
        return False
    return True


class LlamaVocabulary:
    """A GGUF vocabulary (through llama.cpp) as a `serving.backend.Vocabulary`."""

    def __init__(self, model: Any, metadata: dict[str, str]) -> None:
        import llama_cpp

        self._llama = llama_cpp
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.vocab_size = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self._text: list[bytes] = [self._piece(t, special=False) for t in range(self.vocab_size)]
        self._raw: list[bytes] = [self._piece(t, special=True) for t in range(self.vocab_size)]
        self._control = [bool(llama_cpp.llama_vocab_get_attr(self._vocab, t) & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL) for t in range(self.vocab_size)]
        self.eos_ids = frozenset(t for t in range(self.vocab_size) if llama_cpp.llama_vocab_is_eog(self._vocab, t))
        self.chat_template: str | None = metadata.get("tokenizer.chat_template") or None
        self.special_tokens: dict[str, str] = {}
        for name, token in (("bos_token", llama_cpp.llama_vocab_bos(self._vocab)), ("eos_token", llama_cpp.llama_vocab_eos(self._vocab))):
            if 0 <= token < self.vocab_size:
                self.special_tokens[name] = self._raw[token].decode("utf-8", errors="replace")
        self._grammar_vocab: Any = None

    def _piece(self, token: int, *, special: bool) -> bytes:
        buf = ctypes.create_string_buffer(256)
        n = self._llama.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        if n < 0:
            buf = ctypes.create_string_buffer(-n)
            n = self._llama.llama_token_to_piece(self._vocab, token, buf, len(buf), 0, special)
        return buf.raw[: max(n, 0)]

    def encode(self, text: str) -> list[int]:
        data = text.encode("utf-8")
        size = len(data) + 16
        while True:
            buf = (self._llama.llama_token * size)()
            n = self._llama.llama_tokenize(self._vocab, data, len(data), buf, size, False, True)
            if n >= 0:
                return list(buf[:n])
            size = -n

    def decode(self, ids: list[int]) -> str:
        return b"".join(self._text[t] for t in ids if 0 <= t < self.vocab_size).decode("utf-8", errors="replace")

    def token_bytes(self, token: int) -> bytes:
        return self._raw[token] if 0 <= token < self.vocab_size else b""

    def grammar_vocab(self) -> Any:
        if self._grammar_vocab is None:
            import xgrammar as xgr

            # control tokens (<|im_start|>, ...) stand for no text: empty, so a grammar never spells with them
            encoded = [b"" if control else raw for raw, control in zip(self._raw, self._control)]
            self._grammar_vocab = xgr.TokenizerInfo(encoded, xgr.VocabType.RAW, vocab_size=self.vocab_size, stop_token_ids=sorted(self.eos_ids))
        return self._grammar_vocab


_native_log = logging.getLogger("nocodetune.serving.llamacpp.native")
# ggml's levels in this build: 1 debug, 2 info, 3 warn, 4 error, 5 continuation. Its warnings
# here are expected (a shared KV cache is larger than one sequence's trained context).
_LOG_LEVELS = {3: logging.INFO, 4: logging.WARNING}
_log_callback: Any = None  # kept alive: llama.cpp holds a pointer to it


def _route_native_log() -> None:
    """llama.cpp's own messages go to Python logging (errors as warnings), not to stderr."""
    global _log_callback
    if _log_callback is not None:
        return
    import llama_cpp

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        message = text.decode("utf-8", errors="replace").rstrip()
        if message:
            _native_log.log(_LOG_LEVELS.get(level, logging.DEBUG), "%s", message)

    _log_callback = forward
    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))


class LlamaCppRunner:
    """A `serving.backend.ModelRunner` over a llama.cpp context with one sequence id per row."""

    def __init__(self, path: Path, *, max_batch_size: int, kv_tokens: int, threads: int) -> None:
        import llama_cpp
        from llama_cpp import _internals

        _route_native_log()
        self._llama = llama_cpp
        self._threads = threads
        self._model = _internals.LlamaModel(path_model=str(path), params=llama_cpp.llama_model_default_params(), verbose=False)
        self.metadata = self._model.metadata()
        self.vocab_size = self._model.n_vocab()
        self.n_embd = self.embedding_size = self._model.n_embd()
        self.context_window = min(self._model.n_ctx_train(), kv_tokens)
        self.kv_capacity: int | None = kv_tokens
        self.embed_window = min(self.context_window, _EMBED_WINDOW)
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = kv_tokens
        params.n_batch = _BATCH_TOKENS
        params.n_ubatch = 512
        params.n_seq_max = max_batch_size
        params.kv_unified = True
        params.n_threads = params.n_threads_batch = threads
        params.no_perf = True
        self._ctx = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        self._batch = llama_cpp.llama_batch_init(max(_BATCH_TOKENS, max_batch_size), 0, 1)
        self._free = list(range(max_batch_size))
        self._rows: list[int] = []  # sequence id of each row
        self._past: list[int] = []  # tokens each row has in the cache
        self._embed_ctx: Any = None

    def close(self) -> None:
        if self._batch is not None:
            self._llama.llama_batch_free(self._batch)
            self._batch = None
        for ctx in (self._embed_ctx, self._ctx):
            if ctx is not None:
                ctx.close()
        self._model.close()

    @property
    def model(self) -> Any:
        return self._model.model

    def _run(self, ctx: Any, entries: list[tuple[int, int, int, bool]]) -> None:
        """One llama_decode over (token, position, sequence id, wants logits) entries."""
        batch = self._batch
        batch.n_tokens = len(entries)
        for i, (token, pos, seq, logits) in enumerate(entries):
            batch.token[i] = token
            batch.pos[i] = pos
            batch.n_seq_id[i] = 1
            batch.seq_id[i][0] = seq
            batch.logits[i] = logits
        rc = self._llama.llama_decode(ctx.ctx, batch)
        if rc != 0:
            raise RuntimeError(f"llama_decode failed with code {rc}" + (" (no free KV cache cells)" if rc == 1 else ""))

    def _logits(self, index: int) -> Any:
        import numpy as np

        return np.ctypeslib.as_array(self._llama.llama_get_logits_ith(self._ctx.ctx, index), shape=(self.vocab_size,)).copy()

    def prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        import numpy as np
        import torch

        if len(prompts) > len(self._free):
            raise RuntimeError("no free sequence slot")
        seqs = [self._free.pop(0) for _ in prompts]
        out = np.empty((len(prompts), self.vocab_size), dtype=np.float32)
        try:
            pending: list[tuple[int, int, int, bool]] = []
            owners: list[int] = []  # prompt index of each entry that wants logits, in batch order

            def flush() -> None:
                self._run(self._ctx, pending)
                for i, entry in enumerate(pending):
                    if entry[3]:
                        out[owners.pop(0)] = self._logits(i)
                pending.clear()

            for k, (seq, prompt) in enumerate(zip(seqs, prompts)):
                for pos, token in enumerate(prompt):
                    last = pos == len(prompt) - 1
                    pending.append((token, pos, seq, last))
                    if last:
                        owners.append(k)
                    if len(pending) == _BATCH_TOKENS:
                        flush()
            if pending:
                flush()
        except Exception:
            for seq in seqs:
                self._llama.llama_memory_seq_rm(self._ctx.memory, seq, -1, -1)
            self._free = sorted(self._free + seqs)
            raise
        self._rows += seqs
        self._past += [len(p) for p in prompts]
        return torch.from_numpy(out)

    def decode(self, tokens: list[int]) -> torch.Tensor:
        import numpy as np
        import torch

        self._run(self._ctx, [(t, p, s, True) for t, p, s in zip(tokens, self._past, self._rows)])
        self._past = [p + 1 for p in self._past]
        logits = np.ctypeslib.as_array(self._llama.llama_get_logits(self._ctx.ctx), shape=(len(tokens), self.vocab_size)).copy()
        return torch.from_numpy(logits)

    def keep(self, rows: list[int]) -> None:
        kept = set(rows)
        for i, seq in enumerate(self._rows):
            if i not in kept:
                self._llama.llama_memory_seq_rm(self._ctx.memory, seq, -1, -1)
                self._free.append(seq)
        self._free.sort()
        self._rows = [self._rows[i] for i in rows]
        self._past = [self._past[i] for i in rows]

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """Mean-pooled final hidden states from a second context on the same weights."""
        import numpy as np

        llama_cpp = self._llama
        if self._embed_ctx is None:
            from llama_cpp import _internals

            params = llama_cpp.llama_context_default_params()
            params.n_ctx = params.n_batch = params.n_ubatch = self.embed_window
            params.n_seq_max = 1
            params.embeddings = True
            params.pooling_type = llama_cpp.LLAMA_POOLING_TYPE_MEAN
            params.n_threads = params.n_threads_batch = self._threads
            params.no_perf = True
            self._embed_ctx = _internals.LlamaContext(model=self._model, params=params, verbose=False)
        vectors: list[list[float]] = []
        for tokens in inputs:
            llama_cpp.llama_memory_clear(self._embed_ctx.memory, True)
            self._run(self._embed_ctx, [(t, p, 0, True) for p, t in enumerate(tokens)])
            pooled = np.ctypeslib.as_array(llama_cpp.llama_get_embeddings_seq(self._embed_ctx.ctx, 0), shape=(self.n_embd,)).astype(np.float64)
            vectors.append((pooled / max(float(np.linalg.norm(pooled)), 1e-12)).tolist())
        return vectors


def llamacpp_backend(
    path: Path,
    *,
    max_batch_size: int = 16,
    max_queue: int = 64,
    kv_tokens: int = DEFAULT_KV_TOKENS,
    threads: int = 1,
    metrics: EngineMetrics | None = None,
) -> EngineBackend:
    """Serve a GGUF file with llama.cpp."""
    from nocodetune.serving.backend import EngineBackend
    from nocodetune.serving.engine import GenerationEngine
    from nocodetune.serving.fields import LLAMACPP_FIELDS

    runner = LlamaCppRunner(path, max_batch_size=max_batch_size, kv_tokens=kv_tokens, threads=threads)
    vocab = LlamaVocabulary(runner.model, runner.metadata)
    engine = GenerationEngine(runner, vocab, max_batch_size=max_batch_size, max_queue=max_queue, metrics=metrics)
    file_type = runner.metadata.get("general.file_type")
    details = {"backend": "llama.cpp", "precision": f"gguf ({_FILE_TYPES.get(file_type or '', file_type)})", "device": "cpu", "gguf": str(path), "kv_tokens": kv_tokens}
    return EngineBackend(name="llama.cpp", fields=LLAMACPP_FIELDS, engine=engine, vocab=vocab, details=details)


_FILE_TYPES = {"0": "f32", "1": "f16", "2": "q4_0", "3": "q4_1", "7": "q8_0", "8": "q5_0", "9": "q5_1", "15": "q4_k_m", "17": "q5_k_m", "18": "q6_k", "32": "bf16"}
