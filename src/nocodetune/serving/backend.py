"""The serving backend interface: what the OpenAI app needs from whatever runs the model.

Two backends implement it (`serving.hf` for transformers models, `serving.llamacpp` for
GGUF files through llama.cpp). Both are an `EngineBackend`: the same continuous-batching
scheduler, sampler, logprobs and constrained decoding (`serving.engine`), driving a
backend-specific `ModelRunner` (how a batch of sequences is stepped and where its KV cache
lives) and `Vocabulary` (how text becomes tokens and back). What differs between backends
and what a backend honours is declared, not discovered: `fields` is its table of request
fields (`serving.fields`), and the app refuses every field outside it with a 400.

Why one scheduler for both: llama.cpp's own high-level API serves one sequence at a time
and samples inside C++, so logprobs, per-request grammars and n>1 would each need a second
implementation. Driving `llama_decode` with many sequence ids from our scheduler gives
llama.cpp continuous batching and every request feature once, for both backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch

    from nocodetune.serving.engine import GenerationEngine, GenerationHandle, SamplingParams
    from nocodetune.serving.fields import FieldTable


class ModelRunner(Protocol):
    """Steps a batch of sequences whose KV state it holds; rows are in arrival order.

    Only the scheduler thread calls it. A failing `prefill` leaves the batch as it was; after
    a failing `decode` the engine calls `keep([])`.
    """

    vocab_size: int  # width of the logits rows
    context_window: int  # longest sequence (prompt + output) one request may reach
    kv_capacity: int | None  # total tokens the KV cache holds across sequences; None: no fixed budget
    embed_window: int  # longest input `embed` takes
    embedding_size: int  # length of an embedding vector (the hidden size)

    def prefill(self, prompts: list[list[int]]) -> torch.Tensor:
        """Append one row per prompt; return the logits after each prompt's last token [n, V]."""
        ...

    def decode(self, tokens: list[int]) -> torch.Tensor:
        """Feed one token to every row; return the next logits of every row [B, V]."""
        ...

    def keep(self, rows: list[int]) -> None:
        """Keep only these rows (in this order) and free the KV state of the others."""
        ...

    def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """Mean of the last hidden states over each input's tokens, L2-normalised."""
        ...


class Vocabulary(Protocol):
    """Text ↔ tokens for one model, plus what the chat template needs."""

    eos_ids: frozenset[int]
    chat_template: str | None
    special_tokens: dict[str, str]  # bos_token, eos_token, ... as chat templates expect them

    def encode(self, text: str) -> list[int]:
        """Tokens of `text`, special-token markers parsed, no BOS/EOS added."""
        ...

    def decode(self, ids: list[int]) -> str:
        """Text of `ids`, special tokens left out."""
        ...

    def token_bytes(self, token: int) -> bytes:
        """The exact bytes one token stands for (logprobs report them)."""
        ...

    def grammar_vocab(self) -> Any:
        """The `xgrammar.TokenizerInfo` of this vocabulary (built once, on first use)."""
        ...


class ServingBackend(Protocol):
    """What `serving.openai_app` uses; `EngineBackend` is the one implementation."""

    name: str
    fields: FieldTable
    vocab: Vocabulary
    details: dict[str, Any]

    @property
    def context_window(self) -> int: ...
    @property
    def embed_window(self) -> int: ...
    @property
    def embedding_size(self) -> int: ...
    @property
    def vocab_size(self) -> int: ...
    @property
    def active(self) -> int: ...
    @property
    def queue_depth(self) -> int: ...

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> GenerationHandle: ...
    async def embed(self, inputs: list[list[int]]) -> list[list[float]]: ...
    def shutdown(self) -> None: ...


@dataclass
class EngineBackend:
    """A backend = the shared engine over a backend's runner and vocabulary, plus its field table.

    `details` is what /health reports about how the model runs (backend, precision, file).
    """

    name: str
    fields: FieldTable
    engine: GenerationEngine
    vocab: Vocabulary
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def context_window(self) -> int:
        return self.engine.context_window

    @property
    def embed_window(self) -> int:
        return int(self.engine.runner.embed_window)

    @property
    def embedding_size(self) -> int:
        return int(self.engine.runner.embedding_size)

    @property
    def vocab_size(self) -> int:
        return int(self.engine.runner.vocab_size)

    @property
    def active(self) -> int:
        return self.engine.active

    @property
    def queue_depth(self) -> int:
        return self.engine.queue_depth

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> GenerationHandle:
        return self.engine.submit(prompt_ids, params)

    async def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        return await self.engine.embed(inputs)

    def shutdown(self) -> None:
        """Stop the scheduler (waiting requests get an error), then free native resources."""
        self.engine.shutdown()
        close = getattr(self.engine.runner, "close", None)
        if close is not None and not self.engine.running:
            close()
