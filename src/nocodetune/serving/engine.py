"""Continuous batching: one scheduler thread owns the model and decodes every active
sequence in the same forward pass, for every backend.

Why: on a CPU (and on a GPU) one decode step costs about the same for 1 or 8 sequences,
because it is dominated by reading the weights. Stepping all requests together is what
makes aggregate throughput grow with the number of clients.

How: a `ModelRunner` (serving.backend) holds the running batch's KV state; new requests
are prefilled together between decode steps and appended to it; finished or cancelled
sequences are dropped at once, freeing their slot. Sampling happens here, per row, so every
request keeps its own temperature, seed, penalties, logit bias and grammar (a per-request
logits mask from xgrammar) while sharing the forward pass. Logprobs are those of the
model's own distribution (before bias, penalties, grammar mask and temperature), which is
what a separate forward pass of the same model reproduces.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # heavy imports stay inside the scheduler thread
    import torch

    from nocodetune.serving.backend import ModelRunner, Vocabulary

log = logging.getLogger(__name__)


class QueueFullError(Exception):
    """Every slot and every queue place is taken; the client should retry later."""

    def __init__(self, retry_after: int) -> None:
        super().__init__("the server is busy: all generation slots and queue places are taken")
        self.retry_after = retry_after


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: tuple[tuple[int, float], ...] = ()
    logprobs: bool = False  # report each sampled token's logprob
    top_logprobs: int = 0  # and this many most likely alternatives
    grammar: Any = None  # an xgrammar CompiledGrammar the output must stay inside


@dataclass(frozen=True)
class TokenLogprob:
    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


@dataclass
class StreamEvent:
    """What the scheduler reports for one request: new text, then one final event."""

    kind: Literal["delta", "done", "error"]
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)  # the tokens this delta's text came from
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cumulative_logprob: float = 0.0  # sum over every sampled token (with params.logprobs)
    error: str | None = None


class EngineMetrics(Protocol):
    """Hooks the engine calls; `serving.metrics.ServingMetrics` implements them."""

    def observe_first_token(self, seconds: float) -> None: ...
    def add_generated_tokens(self, n: int) -> None: ...
    def add_prompt_tokens(self, n: int) -> None: ...
    def observe_batch(self, size: int) -> None: ...
    def set_queue(self, waiting: int, active: int) -> None: ...


@dataclass
class GenerationHandle:
    """A submitted request. The app awaits `next_event()`; `cancel()` frees the slot."""

    prompt_ids: list[int]
    params: SamplingParams
    loop: asyncio.AbstractEventLoop
    submitted_at: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    _events: asyncio.Queue[StreamEvent] = field(default_factory=asyncio.Queue)
    _cancelled: threading.Event = field(default_factory=threading.Event)

    def cancel(self) -> None:
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    @property
    def reserved_tokens(self) -> int:
        return len(self.prompt_ids) + self.params.max_new_tokens

    async def next_event(self) -> StreamEvent:
        return await self._events.get()

    def _push(self, event: StreamEvent) -> None:  # called from the scheduler thread
        try:
            self.loop.call_soon_threadsafe(self._events.put_nowait, event)
        except RuntimeError:  # the client's loop is gone: nobody is listening
            self.cancel()


@dataclass
class _EmbedJob:
    inputs: list[list[int]]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[list[float]]]

    def resolve(self, result: list[list[float]] | None, error: BaseException | None = None) -> None:
        def settle() -> None:
            if self.future.done():
                return
            if error is not None:
                self.future.set_exception(error)
            else:
                self.future.set_result(result or [])

        try:
            self.loop.call_soon_threadsafe(settle)
        except RuntimeError:
            pass


@dataclass
class _Seq:
    """Scheduler-side state of one sequence in the running batch."""

    handle: GenerationHandle
    generator: Any  # torch.Generator
    matcher: Any = None  # xgrammar GrammarMatcher
    bitmask: Any = None
    output_ids: list[int] = field(default_factory=list)
    pending: int = 0  # sampled, not yet fed to the model
    text_ends: list[int] = field(default_factory=list)  # decoded length after each non-EOS token
    token_logprobs: list[TokenLogprob] = field(default_factory=list)
    reported: int = 0  # token_logprobs already sent with a delta
    cumulative_logprob: float = 0.0
    sent_chars: int = 0
    done: bool = False


class GenerationEngine:
    """Serves many requests with one batch over a `ModelRunner` and its `Vocabulary`."""

    def __init__(
        self,
        runner: ModelRunner,
        vocab: Vocabulary,
        *,
        max_batch_size: int = 16,
        max_queue: int = 64,
        metrics: EngineMetrics | None = None,
    ) -> None:
        self.runner = runner
        self.vocab = vocab
        self.max_batch_size = max_batch_size
        self.max_queue = max_queue
        self.context_window = runner.context_window
        self.metrics = metrics
        self.eos_ids = vocab.eos_ids
        self._seqs: list[_Seq] = []
        self._waiting: deque[GenerationHandle] = deque()
        self._embed_jobs: deque[_EmbedJob] = deque()
        self._active_count = 0
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="nocodetune-scheduler", daemon=True)
        self._thread.start()

    # -- public API (any thread / event loop) ------------------------------------
    def submit(self, prompt_ids: list[int], params: SamplingParams) -> GenerationHandle:
        """Queue a request; raises QueueFullError when slots and queue are all taken."""
        handle = GenerationHandle(prompt_ids=list(prompt_ids), params=params, loop=asyncio.get_running_loop())
        with self._cond:
            if self._stopping:
                raise RuntimeError("engine is shut down")
            if self._active_count + len(self._waiting) >= self.max_batch_size + self.max_queue:
                raise QueueFullError(retry_after=1)
            self._waiting.append(handle)
            self._report_queue()
            self._cond.notify()
        return handle

    async def embed(self, inputs: list[list[int]]) -> list[list[float]]:
        """Embeddings of token sequences, computed by the scheduler thread between steps."""
        loop = asyncio.get_running_loop()
        job = _EmbedJob(inputs=inputs, loop=loop, future=loop.create_future())
        with self._cond:
            if self._stopping:
                raise RuntimeError("engine is shut down")
            self._embed_jobs.append(job)
            self._cond.notify()
        return await job.future

    @property
    def queue_depth(self) -> int:
        return len(self._waiting)

    @property
    def active(self) -> int:
        return self._active_count

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def shutdown(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self._thread.join(timeout)

    # -- scheduler thread ---------------------------------------------------------
    def _report_queue(self) -> None:
        if self.metrics is not None:
            self.metrics.set_queue(len(self._waiting), self._active_count)

    def _take_new(self, free: int) -> list[GenerationHandle]:
        """Waiting requests that fit: a free slot each and, where the KV cache has a fixed
        size (llama.cpp), room for prompt + max_tokens next to what running requests hold."""
        capacity = self.runner.kv_capacity
        with self._cond:
            while not self._stopping and not self._waiting and not self._embed_jobs and self._active_count == 0:
                self._cond.wait(timeout=0.5)
            reserved = sum(s.handle.reserved_tokens for s in self._seqs)
            taken: list[GenerationHandle] = []
            while self._waiting and len(taken) < free:
                handle = self._waiting[0]
                if handle.cancelled:
                    self._waiting.popleft()
                    continue
                if capacity is not None and reserved + handle.reserved_tokens > capacity and (taken or self._seqs):
                    break  # first come, first served: it waits for running requests to finish
                self._waiting.popleft()
                reserved += handle.reserved_tokens
                taken.append(handle)
            self._active_count += len(taken)  # the slots are taken from now on, not after prefill
            return taken

    def _run(self) -> None:
        import torch

        with torch.inference_mode():
            while True:
                if self._stopping:
                    self._fail_all("the server is shutting down")
                    with self._cond:
                        for handle in self._waiting:
                            handle._push(StreamEvent(kind="error", error="the server is shutting down"))
                        self._waiting.clear()
                        for job in self._embed_jobs:
                            job.resolve(None, RuntimeError("the server is shutting down"))
                        self._embed_jobs.clear()
                    return
                self._run_embed_jobs()
                new = self._take_new(self.max_batch_size - len(self._seqs))
                if new:
                    try:
                        self._prefill(new)
                    except Exception as exc:  # e.g. out of memory on a long prompt: only these requests fail
                        log.exception("prefill failed")
                        for handle in new:
                            handle._push(StreamEvent(kind="error", error=f"generation failed: {exc}"))
                if self._seqs:
                    try:
                        self._decode_step()
                    except Exception as exc:  # a failed step must not take the server down
                        log.exception("decode step failed")
                        self._fail_all(f"generation failed: {exc}")
                with self._cond:
                    self._active_count = len(self._seqs)
                    self._report_queue()

    def _run_embed_jobs(self) -> None:
        while True:
            with self._cond:
                if not self._embed_jobs:
                    return
                job = self._embed_jobs.popleft()
            try:
                job.resolve(self.runner.embed(job.inputs))
            except Exception as exc:  # noqa: BLE001 - the caller gets the error, the server goes on
                log.exception("embedding failed")
                job.resolve(None, exc)

    def _fail_all(self, message: str) -> None:
        for seq in self._seqs:
            if not seq.done:
                seq.handle._push(StreamEvent(kind="error", error=message))
        self._seqs = []
        try:
            self.runner.keep([])
        except Exception:  # noqa: BLE001 - a runner that cannot even reset is reported by the next step
            log.exception("resetting the batch failed")

    def _new_seq(self, handle: GenerationHandle) -> _Seq:
        import torch

        generator = torch.Generator(device="cpu")
        generator.manual_seed(handle.params.seed if handle.params.seed is not None else random.getrandbits(63))
        seq = _Seq(handle=handle, generator=generator)
        if handle.params.grammar is not None:
            import xgrammar as xgr

            seq.matcher = xgr.GrammarMatcher(handle.params.grammar)
            seq.bitmask = xgr.allocate_token_bitmask(1, self.runner.vocab_size)
        return seq

    def _prefill(self, handles: list[GenerationHandle]) -> None:
        seqs = [self._new_seq(h) for h in handles]  # before the runner grows: rows and sequences stay aligned
        logits = self.runner.prefill([h.prompt_ids for h in handles])  # unchanged batch if this raises
        if self.metrics is not None:
            for handle in handles:
                self.metrics.add_prompt_tokens(len(handle.prompt_ids))
        self._seqs = self._seqs + seqs
        self._sample_and_emit(seqs, logits)
        self._drop_finished()

    def _decode_step(self) -> None:
        if self.metrics is not None:
            self.metrics.observe_batch(len(self._seqs))
        logits = self.runner.decode([s.pending for s in self._seqs])
        self._sample_and_emit(self._seqs, logits)
        self._drop_finished()

    def _drop_finished(self) -> None:
        keep = [i for i, s in enumerate(self._seqs) if not (s.done or s.handle.cancelled)]
        if len(keep) == len(self._seqs):
            return
        self.runner.keep(keep)
        self._seqs = [self._seqs[i] for i in keep]

    def _sample_and_emit(self, seqs: list[_Seq], logits: torch.Tensor) -> None:
        """Pick each sequence's next token, stream its new text, mark finished ones."""
        logits = logits.float().cpu()
        now = time.perf_counter()
        for row, seq in enumerate(seqs):
            if seq.handle.cancelled:
                seq.done = True
                continue
            try:
                token = self._choose(seq, logits[row])
            except Exception as exc:  # noqa: BLE001 - e.g. a grammar that rejects: only this request fails
                log.exception("sampling failed")
                seq.done = True
                seq.handle._push(StreamEvent(kind="error", error=f"generation failed: {exc}"))
                continue
            seq.pending = token
            if seq.handle.first_token_at is None:
                seq.handle.first_token_at = now
                if self.metrics is not None:
                    self.metrics.observe_first_token(now - seq.handle.submitted_at)
            if self.metrics is not None:
                self.metrics.add_generated_tokens(1)
            seq.output_ids.append(token)
            if token in self.eos_ids:
                if seq.token_logprobs:
                    seq.token_logprobs.pop()  # the end-of-sequence token brings no text to report
                self._finish(seq, "stop")
                continue
            self._emit_text(seq)
            if seq.done:
                continue
            if seq.matcher is not None and seq.matcher.is_terminated():
                self._finish(seq, "stop")
            elif len(seq.output_ids) >= seq.handle.params.max_new_tokens:
                self._finish(seq, "length")
            elif len(seq.handle.prompt_ids) + len(seq.output_ids) >= self.context_window:
                self._finish(seq, "length")

    def _choose(self, seq: _Seq, raw: torch.Tensor) -> int:
        """One token for one sequence: bias, penalties, grammar mask, then temperature/top-p."""
        import torch

        params = seq.handle.params
        logits = raw
        if params.logit_bias:
            logits = logits.clone()
            ids = torch.tensor([t for t, _ in params.logit_bias], dtype=torch.long)
            logits[ids] += torch.tensor([b for _, b in params.logit_bias], dtype=logits.dtype)
        if (params.frequency_penalty or params.presence_penalty) and seq.output_ids:
            counts = torch.bincount(torch.tensor(seq.output_ids, dtype=torch.long), minlength=logits.numel())[: logits.numel()].to(logits.dtype)
            logits = logits - counts * params.frequency_penalty - (counts > 0).to(logits.dtype) * params.presence_penalty
        if seq.matcher is not None:
            import xgrammar as xgr

            if logits is raw:
                logits = logits.clone()
            seq.matcher.fill_next_token_bitmask(seq.bitmask)
            xgr.apply_token_bitmask_inplace(logits.view(1, -1), seq.bitmask)
        token = _sample(logits, params, seq.generator)
        if seq.matcher is not None and not seq.matcher.accept_token(token):
            raise RuntimeError(f"the grammar rejected token {token}")
        if params.logprobs or params.top_logprobs:
            logp = torch.log_softmax(raw, -1)
            chosen = float(logp[token])
            seq.cumulative_logprob += chosen
            top: tuple[tuple[int, float], ...] = ()
            if params.top_logprobs:
                values, ids = torch.topk(logp, min(params.top_logprobs, logp.numel()))
                top = tuple(zip(ids.tolist(), values.tolist()))
            seq.token_logprobs.append(TokenLogprob(token=token, logprob=chosen, top=top))
        return token

    def _decode(self, seq: _Seq) -> str:
        return self.vocab.decode([t for t in seq.output_ids if t not in self.eos_ids])

    def _logprobs_upto(self, seq: _Seq, chars: int, *, starting_before: bool = False) -> list[TokenLogprob]:
        """Logprobs of the tokens whose text now lies within the first `chars` characters
        (or, at a stop-string cut, that begin before it), each reported once."""
        if not seq.token_logprobs:
            return []
        out: list[TokenLogprob] = []
        i = seq.reported
        while i < len(seq.token_logprobs) and i < len(seq.text_ends):
            start = seq.text_ends[i - 1] if i > 0 else 0
            if (start < chars) if starting_before else (seq.text_ends[i] <= chars):
                out.append(seq.token_logprobs[i])
                i += 1
            else:
                break
        seq.reported = len(seq.token_logprobs) if starting_before else i
        return out

    def _emit_text(self, seq: _Seq) -> None:
        """Send new text, holding back what may be the start of a stop string."""
        text = self._decode(seq)
        seq.text_ends.append(len(text))
        stops = seq.handle.params.stop
        if stops:
            start = max(0, seq.sent_chars - max(len(s) for s in stops))
            hits = [i for i in (text.find(s, start) for s in stops) if i >= 0]
            if hits:
                cut = min(hits)
                logprobs = self._logprobs_upto(seq, cut, starting_before=True)
                if cut > seq.sent_chars or logprobs:
                    seq.handle._push(StreamEvent(kind="delta", text=text[seq.sent_chars : cut] if cut > seq.sent_chars else "", logprobs=logprobs))
                seq.sent_chars = max(seq.sent_chars, cut)
                self._finish(seq, "stop", final_text_sent=True)
                return
        safe = len(text)
        while safe > seq.sent_chars and text[safe - 1] == "\ufffd":  # an incomplete UTF-8 character
            safe -= 1
        for s in stops:
            for k in range(min(len(s) - 1, safe - seq.sent_chars), 0, -1):
                if text[:safe].endswith(s[:k]):
                    safe -= k
                    break
        if safe > seq.sent_chars:
            seq.handle._push(StreamEvent(kind="delta", text=text[seq.sent_chars : safe], logprobs=self._logprobs_upto(seq, safe)))
            seq.sent_chars = safe

    def _finish(self, seq: _Seq, reason: str, *, final_text_sent: bool = False) -> None:
        if seq.done:
            return
        if not final_text_sent:
            text = self._decode(seq)
            rest = seq.token_logprobs[seq.reported :]
            seq.reported = len(seq.token_logprobs)
            if len(text) > seq.sent_chars or rest:
                seq.handle._push(StreamEvent(kind="delta", text=text[seq.sent_chars :], logprobs=list(rest)))
                seq.sent_chars = len(text)
        seq.done = True
        seq.handle._push(
            StreamEvent(
                kind="done",
                finish_reason=reason,
                prompt_tokens=len(seq.handle.prompt_ids),
                completion_tokens=len(seq.output_ids),
                cumulative_logprob=seq.cumulative_logprob,
            )
        )


_NUCLEUS_CANDIDATES = 256  # top-p first looks at this many tokens; a full-vocabulary sort costs ~3 ms per token on a CPU


def _sample(logits: torch.Tensor, params: SamplingParams, generator: Any) -> int:
    """Greedy at temperature 0; else temperature + top-p sampling by inverse CDF, which is
    exact and ~15x faster than torch.multinomial over a 50k vocabulary on a CPU."""
    import torch

    if params.temperature <= 1e-5:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits / params.temperature, -1)
    ids = None
    if params.top_p < 1.0:
        ids, probs = _nucleus(probs, params.top_p)
    cdf = probs.cumsum(0)
    pick = int(torch.searchsorted(cdf, torch.rand(1, generator=generator) * cdf[-1]).clamp(max=probs.numel() - 1))
    if probs[pick] <= 0:  # only when the uniform draw is exactly 0 and the first token is masked out
        pick = int(torch.argmax(probs))
    return int(ids[pick]) if ids is not None else pick


def _nucleus(probs: torch.Tensor, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The most likely tokens whose mass first reaches top_p (ids, probs), found with topk
    on a growing candidate set instead of sorting the whole vocabulary."""
    import torch

    k = min(_NUCLEUS_CANDIDATES, probs.numel())
    while True:
        values, ids = torch.topk(probs, k)  # sorted, most likely first
        cumulative = values.cumsum(0)
        if cumulative[-1] >= top_p or k == probs.numel():
            keep = (cumulative - values) < top_p  # keep the token that crosses top_p
            return ids[keep], values[keep]
        k = min(k * 8, probs.numel())
