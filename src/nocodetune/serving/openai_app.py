"""The OpenAI-compatible HTTP face of a serving backend.

Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions (both with SSE
streaming), POST /v1/embeddings, GET /health, GET /metrics. Every request field is checked
against the backend's table (serving.fields): a field the backend does not honour gets a
400 naming it, never a 200 that ignores it. Every error has OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`, and permanent 4xx answers carry
`x-should-retry: false` so the SDK raises at once instead of retrying.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nocodetune import __version__
from nocodetune.http_guard import BrowserGuardMiddleware
from nocodetune.settings import get_settings
from nocodetune.serving.backend import ServingBackend
from nocodetune.serving.constraints import Constraints
from nocodetune.serving.engine import GenerationHandle, QueueFullError, SamplingParams, StreamEvent, TokenLogprob
from nocodetune.serving.fields import FieldRefusal, check_fields
from nocodetune.serving.metrics import ServingMetrics
from nocodetune.serving.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChoiceLogprobs,
    ChunkChoice,
    ChunkDelta,
    Completion,
    CompletionChoice,
    CompletionLogprobs,
    CompletionRequest,
    Embedding,
    EmbeddingList,
    EmbeddingRequest,
    EmbeddingUsage,
    ErrorBody,
    ErrorResponse,
    FunctionCall,
    ModelCard,
    ModelList,
    TokenLogprobEntry,
    ToolCall,
    ToolCallDelta,
    TopLogprob,
    Usage,
    new_id,
)
from nocodetune.serving.tools import (
    ToolFormat,
    history_tool_calls,
    new_call_id,
    parse_tool_calls,
    reads_message_names,
    render_chat,
    renders_tool_calls,
    renders_tools,
    tool_format,
)

log = logging.getLogger(__name__)

_DISCONNECT_CHECK_S = 0.5  # how often a non-streaming request checks that its client is still there
_RETRYABLE = {408, 409, 429}  # the 4xx statuses the openai SDK retries


class OpenAIError(Exception):
    """An error answered in OpenAI's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.body = status, ErrorBody(message=message, type=type, param=param, code=code)
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        headers = dict(self.headers)
        if 400 <= self.status < 500 and self.status not in _RETRYABLE:
            headers["x-should-retry"] = "false"  # a refused request stays refused: the SDK must not retry it
        return JSONResponse(status_code=self.status, content=ErrorResponse(error=self.body).model_dump(), headers=headers)


def _guard_refusal(scope: Any, status: int, message: str, hint: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    response = OpenAIError(status, f"{message} ({hint})" if hint else message, type="permission_error", code="forbidden").response()
    return response.status_code, response.raw_headers, bytes(response.body)


class _CountRequests:
    """Counts answers by route template and status. Plain ASGI, not `@app.middleware("http")`:
    Starlette's BaseHTTPMiddleware hides the client's disconnect from `request.is_disconnected()`.

    The label is the matched route's template (`/v1/models/{model_id:path}`), never the raw
    path, and every URL no route matches counts under `unmatched`: label values stay bounded
    whatever clients send.
    """

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            self.metrics.count_request(getattr(route, "path", None) or "unmatched", status)


class ServedModel(BaseModel):
    name: str
    source: str
    created: int


@dataclass
class _Answer:
    """One choice's finished generation."""

    text: str
    done: StreamEvent
    logprobs: list[TokenLogprob] = field(default_factory=list)


def create_app(
    backend: ServingBackend,
    *,
    model_name: str,
    source: str = "",
    api_token: str | None = None,
    default_max_tokens: int = 256,
    metrics: ServingMetrics | None = None,
    public: bool = False,
) -> FastAPI:
    """Build the app around a running backend.

    `api_token` makes /v1 require `Authorization: Bearer <token>`; `public` (the server is
    bound to a non-loopback address) puts /metrics behind the same token.
    """
    metrics = metrics or ServingMetrics()
    served = ServedModel(name=model_name, source=source, created=int(time.time()))
    constraints = Constraints(backend.vocab)
    vocab = backend.vocab

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(backend.shutdown)  # waiting requests get an error, not a hang

    app = FastAPI(title=f"NoCodeTune model server: {model_name}", version=__version__, lifespan=lifespan)
    app.state.backend, app.state.metrics, app.state.served = backend, metrics, served

    @app.exception_handler(OpenAIError)
    async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(FieldRefusal)
    async def _refused(_: Request, exc: FieldRefusal) -> JSONResponse:
        return OpenAIError(400, exc.message, param=exc.param, code=exc.code).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in _field_path(first.get("loc", ()))) or None
        if first.get("type") == "json_invalid":
            return OpenAIError(400, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(": "), code="invalid_json").response()
        return OpenAIError(400, f"{param or 'body'}: {first.get('msg', 'invalid value')}", param=param, code="invalid_value").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return OpenAIError(exc.status_code, str(exc.detail), code=code).response()

    app.add_middleware(_CountRequests, metrics=metrics)
    # Foreign Host (DNS rebinding) and cross-site Origin are refused here too: a web page the
    # user opens must not drive the model server on 127.0.0.1 (docs/security.md).
    hosts = [h for h in get_settings().allowed_hosts.split(",") if h.strip()]
    app.add_middleware(BrowserGuardMiddleware, allowed_hosts=hosts, csrf=False, refuse=_guard_refusal)

    def bearer(token: str | None) -> Any:
        def check(request: Request) -> None:
            if token is None:
                return
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise OpenAIError(401, "missing or wrong API key (send Authorization: Bearer <NOCODETUNE_API_TOKEN>)", code="invalid_api_key")

        return check

    check_token = bearer(api_token)
    check_metrics_token = bearer(api_token if public else None)

    def check_model(name: str) -> None:
        if name != served.name:
            raise OpenAIError(404, f"the model {name!r} does not exist; this server serves {served.name!r}", param="model", code="model_not_found")

    def record_user(given: dict[str, Any]) -> None:
        ids = {k: given[k] for k in ("user", "safety_identifier") if given.get(k)}
        if ids:
            log.info("request for %s from %s", served.name, " ".join(f"{k}={v!r}" for k, v in ids.items()))

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {
            "status": "ok",
            "model": served.name,
            **backend.details,
            "context_window": backend.context_window,
            "active": backend.active,
            "queued": backend.queue_depth,
        }

    @app.get("/metrics", dependencies=[Depends(check_metrics_token)])
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models", dependencies=[Depends(check_token)])
    def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=served.name, created=served.created, max_model_len=backend.context_window, source=served.source)])

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(check_token)])
    def get_model(model_id: str) -> ModelCard:
        check_model(model_id)
        return ModelCard(id=served.name, created=served.created, max_model_len=backend.context_window, source=served.source)

    def max_new_tokens(requested: int | None, prompt_len: int, param: str) -> int:
        room = backend.context_window - prompt_len
        if room <= 0:
            raise OpenAIError(
                400, f"the prompt has {prompt_len} tokens, the context window is {backend.context_window}", param=param, code="context_length_exceeded"
            )
        if requested is not None and requested > room:
            raise OpenAIError(
                400,
                f"max_tokens={requested} plus the prompt's {prompt_len} tokens exceeds the context window of {backend.context_window} tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return requested or min(default_max_tokens, room)

    def logit_bias(body: ChatCompletionRequest | CompletionRequest) -> tuple[tuple[int, float], ...]:
        out = []
        size = backend.vocab_size
        for key, bias in (body.logit_bias or {}).items():
            token = int(key)
            if not 0 <= token < size:
                raise OpenAIError(400, f"logit_bias: token id {token} is not in this model's vocabulary of {size}", param="logit_bias", code="invalid_value")
            out.append((token, float(bias)))
        return tuple(out)

    def sampling(body: ChatCompletionRequest | CompletionRequest, new_tokens: int, *, logprobs: bool, top: int, grammar: Any = None) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=new_tokens,
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            seed=body.seed,
            stop=tuple(body.stop_list()),
            frequency_penalty=body.frequency_penalty or 0.0,
            presence_penalty=body.presence_penalty or 0.0,
            logit_bias=logit_bias(body),
            logprobs=logprobs,
            top_logprobs=top,
            grammar=grammar,
        )

    def submit_all(prompt_ids: list[int], params: SamplingParams, count: int) -> list[GenerationHandle]:
        """`count` generations of one prompt (choice i with seed + i), all or none."""
        handles: list[GenerationHandle] = []
        try:
            for i in range(count):
                seed = None if params.seed is None else params.seed + i
                handles.append(backend.submit(prompt_ids, _with_seed(params, seed)))
        except QueueFullError as exc:
            for handle in handles:
                handle.cancel()
            raise OpenAIError(429, str(exc), type="rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": str(exc.retry_after)}) from exc
        return handles

    def token_entry(lp: TokenLogprob) -> TokenLogprobEntry:
        raw = vocab.token_bytes(lp.token)
        return TokenLogprobEntry(
            token=raw.decode("utf-8", errors="replace"),
            logprob=lp.logprob,
            bytes=list(raw),
            top_logprobs=[TopLogprob(token=(b := vocab.token_bytes(t)).decode("utf-8", errors="replace"), logprob=v, bytes=list(b)) for t, v in lp.top],
        )

    # -- chat -----------------------------------------------------------------------
    @dataclass
    class ChatPlan:
        prompt_ids: list[int]
        grammar: Any
        tools: ToolFormat | None  # set when tool calls are parsed from the output

    async def plan_chat(body: ChatCompletionRequest) -> ChatPlan:
        template = vocab.chat_template
        if not body.messages:
            raise OpenAIError(400, "messages must hold at least one message", param="messages", code="invalid_value")
        if not template:
            raise OpenAIError(400, "this model has no chat template; use /v1/completions", param="messages", code="no_chat_template")
        conversation: list[dict[str, Any]] = []
        for i, message in enumerate(body.messages):
            check_fields(backend.fields, "message", message.model_dump(exclude_unset=True), backend=backend.name, prefix=f"messages.{i}.")
            if isinstance(message.content, list) and any(p.type != "text" for p in message.content):
                raise OpenAIError(400, "only text content parts are supported", param=f"messages.{i}.content", code="unsupported_value")
            turn: dict[str, Any] = {"role": "system" if message.role == "developer" else message.role, "content": message.text()}
            if message.name is not None:
                if not reads_message_names(template):
                    raise FieldRefusal(f"messages.{i}.name", f"messages.{i}.name: this model's chat template does not use message names")
                turn["name"] = message.name
            if message.tool_calls:
                if not renders_tool_calls(template):
                    raise FieldRefusal(f"messages.{i}.tool_calls", f"messages.{i}.tool_calls: this model's chat template does not render tool calls")
                turn["tool_calls"] = history_tool_calls(message.tool_calls)
            if message.tool_call_id is not None:
                turn["tool_call_id"] = message.tool_call_id
            conversation.append(turn)

        tools = body.tools or None
        calling: ToolFormat | None = None
        if body.tool_choice is not None and not tools:
            raise OpenAIError(400, "tool_choice needs tools", param="tool_choice", code="invalid_value")
        if tools:
            if not renders_tools(template):
                raise FieldRefusal("tools", "tools: this model's chat template has no tool support (it does not render `tools`)")
            if body.tool_choice != "none":
                calling = tool_format(template)
                if calling is None:
                    raise FieldRefusal(
                        "tools", "tools: this model's chat template renders tools, but its tool-call format is neither Hermes <tool_call> nor Llama 3 JSON"
                    )
        rf = body.response_format
        if calling is not None and rf is not None and rf.get("type") != "text":
            raise OpenAIError(400, "response_format json_object/json_schema cannot be combined with tools", param="response_format", code="unsupported_value")
        try:
            text = render_chat(template, conversation, tools=tools, special_tokens=vocab.special_tokens)
        except Exception as exc:  # templates raise on role orders they do not accept
            raise OpenAIError(400, f"the model's chat template refused these messages: {exc}", param="messages", code="invalid_value") from exc
        grammar = None
        if calling is not None:
            grammar = await asyncio.to_thread(
                constraints.tool_calls,
                calling.structural_tag,
                tools or [],
                body.tool_choice,
                parallel=body.parallel_tool_calls is not False,
                reasoning=calling.reasoning,
            )
        elif rf is not None:
            grammar = await asyncio.to_thread(constraints.response_format, rf)
        return ChatPlan(prompt_ids=vocab.encode(text), grammar=grammar, tools=calling)

    @app.post("/v1/chat/completions", dependencies=[Depends(check_token)])
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        given = body.given()
        check_fields(backend.fields, "chat", {k: v for k, v in given.items() if k != "messages"}, backend=backend.name)
        check_model(body.model)
        record_user(given)
        if body.top_logprobs and not body.logprobs:
            raise OpenAIError(400, "top_logprobs needs logprobs: true", param="top_logprobs", code="invalid_value")
        plan = await plan_chat(body)
        new_tokens = max_new_tokens(body.requested_max_tokens(), len(plan.prompt_ids), "messages")
        want_logprobs = bool(body.logprobs)
        params = sampling(body, new_tokens, logprobs=want_logprobs, top=body.top_logprobs or 0, grammar=plan.grammar)
        handles = submit_all(plan.prompt_ids, params, body.n or 1)
        started = time.perf_counter()
        if body.stream:
            return sse(stream_chat(handles, body, plan, started))
        answers = await collect_all(handles, request)
        metrics.observe_latency("chat", time.perf_counter() - started)
        choices = [chat_choice(i, a, plan.tools, want_logprobs) for i, a in enumerate(answers)]
        return JSONResponse(ChatCompletion(model=served.name, choices=choices, usage=_usage([a.done for a in answers], [len(plan.prompt_ids)])).model_dump())

    def chat_choice(index: int, answer: _Answer, calling: ToolFormat | None, want_logprobs: bool) -> ChatChoice:
        content: str | None = answer.text
        tool_calls = None
        finish = answer.done.finish_reason or "stop"
        if calling is not None:
            content, calls = parse_tool_calls(calling, answer.text)
            if calls:
                tool_calls = [ToolCall(id=new_call_id(), function=FunctionCall(name=c.name, arguments=c.arguments)) for c in calls]
                if finish == "stop":
                    finish = "tool_calls"
        logprobs = ChoiceLogprobs(content=[token_entry(lp) for lp in answer.logprobs]) if want_logprobs else None
        return ChatChoice(index=index, message=AssistantMessage(content=content, tool_calls=tool_calls), finish_reason=finish, logprobs=logprobs)  # type: ignore[arg-type]

    async def stream_chat(handles: list[GenerationHandle], body: ChatCompletionRequest, plan: ChatPlan, started: float) -> AsyncIterator[str]:
        chunk_id, created = new_id("chatcmpl"), int(time.time())
        want_logprobs = bool(body.logprobs)

        def chunk(index: int, delta: ChunkDelta, finish: str | None = None, logprobs: list[TokenLogprob] | None = None) -> str:
            lp = ChoiceLogprobs(content=[token_entry(x) for x in logprobs or []]) if want_logprobs and logprobs is not None else None
            choice = ChunkChoice(index=index, delta=delta, finish_reason=finish, logprobs=lp)  # type: ignore[arg-type]
            return _data(ChatCompletionChunk(id=chunk_id, created=created, model=served.name, choices=[choice]))

        buffered: dict[int, _Answer] = {}  # with tools, a choice's text is parsed once it is complete
        finished: list[StreamEvent] = []
        for i in range(len(handles)):
            yield chunk(i, ChunkDelta(role="assistant", content=""))
        async for index, event in _merged(handles):
            if event.kind == "error":
                yield _data({"error": ErrorBody(message=event.error or "generation failed", type="server_error", code="generation_failed").model_dump()})
                break
            if plan.tools is not None:
                answer = buffered.setdefault(index, _Answer(text="", done=event))
                if event.kind == "delta":
                    answer.text += event.text
                    answer.logprobs += event.logprobs
                    continue
                answer.done = event
                choice = chat_choice(index, answer, plan.tools, want_logprobs)
                if choice.message.content:
                    yield chunk(index, ChunkDelta(content=choice.message.content), logprobs=answer.logprobs)
                if choice.message.tool_calls:
                    yield chunk(index, ChunkDelta(tool_calls=[ToolCallDelta(index=k, id=c.id, function=c.function) for k, c in enumerate(choice.message.tool_calls)]))
                yield chunk(index, ChunkDelta(), finish=choice.finish_reason)
                finished.append(event)
                continue
            if event.kind == "delta":
                yield chunk(index, ChunkDelta(content=event.text), logprobs=event.logprobs)
            else:
                yield chunk(index, ChunkDelta(), finish=event.finish_reason)
                finished.append(event)
        else:
            if body.include_usage_in_stream():
                yield _data(ChatCompletionChunk(id=chunk_id, created=created, model=served.name, choices=[], usage=_usage(finished, [len(plan.prompt_ids)])))
            metrics.observe_latency("chat", time.perf_counter() - started)
        yield "data: [DONE]\n\n"

    # -- completions -------------------------------------------------------------------
    def prompt_token_lists(prompt: str | list[str] | list[int] | list[list[int]]) -> list[list[int]]:
        if isinstance(prompt, str):
            prompts: list[Any] = [prompt]
        elif prompt and all(isinstance(x, int) for x in prompt):
            prompts = [prompt]
        else:
            prompts = list(prompt)
        if not prompts:
            raise OpenAIError(400, "prompt must not be empty", param="prompt", code="invalid_value")
        out = []
        for p in prompts:
            ids = vocab.encode(p) if isinstance(p, str) else list(p)
            if not ids:
                raise OpenAIError(400, "prompt must not be empty", param="prompt", code="invalid_value")
            size = backend.vocab_size
            if any(not 0 <= t < size for t in ids):
                raise OpenAIError(400, f"prompt holds a token id outside the vocabulary of {size}", param="prompt", code="invalid_value")
            out.append(ids)
        return out

    def completion_logprobs(answer: _Answer, offset: int, top: int) -> CompletionLogprobs:
        tokens, values, tops, offsets = [], [], [], []
        for lp in answer.logprobs:
            text = vocab.token_bytes(lp.token).decode("utf-8", errors="replace")
            tokens.append(text)
            values.append(lp.logprob)
            tops.append({vocab.token_bytes(t).decode("utf-8", errors="replace"): v for t, v in lp.top})
            offsets.append(offset)
            offset += len(text)
        return CompletionLogprobs(tokens=tokens, token_logprobs=values, top_logprobs=tops if top else None, text_offset=offsets)

    @app.post("/v1/completions", dependencies=[Depends(check_token)])
    async def completions(body: CompletionRequest, request: Request) -> Response:
        given = body.given()
        check_fields(backend.fields, "completions", given, backend=backend.name)
        check_model(body.model)
        record_user(given)
        n = body.n or 1
        best_of = body.best_of or n
        if best_of < n:
            raise OpenAIError(400, f"best_of ({best_of}) must be at least n ({n})", param="best_of", code="invalid_value")
        if best_of > n and body.stream:
            raise OpenAIError(400, "best_of > n cannot be streamed: the best choices are known only at the end", param="best_of", code="unsupported_value")
        if body.echo and body.logprobs is not None:
            raise OpenAIError(400, "echo with logprobs is not supported: prompt logprobs are not computed", param="echo", code="unsupported_value")
        prompts = prompt_token_lists(body.prompt)
        if len(prompts) * best_of > 64:
            raise OpenAIError(400, f"{len(prompts)} prompts × {best_of} choices is more than 64 generations in one request", param="prompt", code="invalid_value")
        want_logprobs = body.logprobs is not None
        jobs: list[tuple[str, list[GenerationHandle]]] = []
        try:
            for ids in prompts:
                params = sampling(body, max_new_tokens(body.max_tokens, len(ids), "prompt"), logprobs=want_logprobs or best_of > n, top=body.logprobs or 0)
                jobs.append((vocab.decode(ids) if body.echo else "", submit_all(ids, params, best_of)))
        except OpenAIError:
            for _, handles in jobs:
                for handle in handles:
                    handle.cancel()
            raise
        started = time.perf_counter()
        if body.stream:
            return sse(stream_completion([h for _, hs in jobs for h in hs], [p for p, hs in jobs for _ in hs], [len(ids) for ids in prompts], body, started))
        choices: list[CompletionChoice] = []
        answers_all: list[_Answer] = []
        per_prompt = await asyncio.gather(*(collect_all(handles, request) for _, handles in jobs))
        for (prefix, _), answers in zip(jobs, per_prompt):
            answers_all += answers
            if best_of > n:
                answers = sorted(answers, key=lambda a: a.done.cumulative_logprob, reverse=True)[:n]
            for a in answers:
                choices.append(
                    CompletionChoice(
                        index=len(choices),
                        text=prefix + a.text,
                        finish_reason=a.done.finish_reason,  # type: ignore[arg-type]
                        logprobs=completion_logprobs(a, len(prefix), body.logprobs or 0) if want_logprobs else None,
                    )
                )
        metrics.observe_latency("completions", time.perf_counter() - started)
        return JSONResponse(Completion(model=served.name, choices=choices, usage=_usage([a.done for a in answers_all], [len(ids) for ids in prompts])).model_dump())

    async def stream_completion(
        handles: list[GenerationHandle], prefixes: list[str], prompt_lens: list[int], body: CompletionRequest, started: float
    ) -> AsyncIterator[str]:
        chunk_id, created = new_id("cmpl"), int(time.time())
        want_logprobs = body.logprobs is not None
        offsets = [len(p) for p in prefixes]

        def chunk(index: int, text: str, finish: str | None = None, logprobs: list[TokenLogprob] | None = None) -> str:
            lp = None
            if want_logprobs:
                lp = completion_logprobs(_Answer(text=text, done=StreamEvent(kind="delta"), logprobs=logprobs or []), offsets[index], body.logprobs or 0)
                offsets[index] += len(text)
            choice = CompletionChoice(index=index, text=text, finish_reason=finish, logprobs=lp)  # type: ignore[arg-type]
            return _data(Completion(id=chunk_id, created=created, model=served.name, choices=[choice]))

        finished: list[StreamEvent] = []
        for i, prefix in enumerate(prefixes):
            if prefix:
                yield _data(Completion(id=chunk_id, created=created, model=served.name, choices=[CompletionChoice(index=i, text=prefix)]))
        async for index, event in _merged(handles):
            if event.kind == "error":
                yield _data({"error": ErrorBody(message=event.error or "generation failed", type="server_error", code="generation_failed").model_dump()})
                break
            if event.kind == "delta":
                yield chunk(index, event.text, logprobs=event.logprobs)
            else:
                yield chunk(index, "", finish=event.finish_reason, logprobs=[])
                finished.append(event)
        else:
            if body.include_usage_in_stream():
                yield _data(Completion(id=chunk_id, created=created, model=served.name, choices=[], usage=_usage(finished, prompt_lens)))
            metrics.observe_latency("completions", time.perf_counter() - started)
        yield "data: [DONE]\n\n"

    # -- embeddings ----------------------------------------------------------------------
    @app.post("/v1/embeddings", dependencies=[Depends(check_token)])
    async def embeddings(body: EmbeddingRequest) -> Response:
        given = body.given()
        check_fields(backend.fields, "embeddings", given, backend=backend.name)
        check_model(body.model)
        record_user(given)
        size = backend.embedding_size
        if body.dimensions is not None and body.dimensions != size:
            raise FieldRefusal("dimensions", f"dimensions={body.dimensions}: this model's embeddings have {size} dimensions", code="unsupported_value")
        raw = body.input
        items: list[Any] = [raw] if isinstance(raw, str) or (raw and all(isinstance(x, int) for x in raw)) else list(raw)
        if not items:
            raise OpenAIError(400, "input must not be empty", param="input", code="invalid_value")
        if len(items) > 2048:
            raise OpenAIError(400, f"at most 2048 inputs per request, got {len(items)}", param="input", code="invalid_value")
        token_lists = []
        for i, item in enumerate(items):
            ids = vocab.encode(item) if isinstance(item, str) else list(item)
            param = "input" if len(items) == 1 else f"input.{i}"
            if not ids:
                raise OpenAIError(400, "input must not be empty", param=param, code="invalid_value")
            if len(ids) > backend.embed_window:
                raise OpenAIError(400, f"input has {len(ids)} tokens, more than {backend.embed_window}", param=param, code="context_length_exceeded")
            token_lists.append(ids)
        started = time.perf_counter()
        try:
            vectors = await backend.embed(token_lists)
        except Exception as exc:  # noqa: BLE001 - answered as a server error in OpenAI's shape
            raise OpenAIError(500, f"embedding failed: {exc}", type="server_error", code="embedding_failed") from exc
        metrics.observe_latency("embeddings", time.perf_counter() - started)
        as_base64 = body.encoding_format == "base64"
        data = [Embedding(index=i, embedding=_base64(v) if as_base64 else v) for i, v in enumerate(vectors)]
        tokens = sum(len(t) for t in token_lists)
        return JSONResponse(EmbeddingList(data=data, model=served.name, usage=EmbeddingUsage(prompt_tokens=tokens, total_tokens=tokens)).model_dump())

    return app


def _field_path(loc: tuple[Any, ...]) -> list[Any]:
    """A validation error's location as the request field path (no 'body', no union branch names)."""
    branch_tags = {"str", "int", "float", "bool", "dict", "list", "none"}
    return [p for p in loc if p != "body" and not (isinstance(p, str) and (p in branch_tags or "[" in p))]


def _with_seed(params: SamplingParams, seed: int | None) -> SamplingParams:
    from dataclasses import replace

    return replace(params, seed=seed)


def _base64(vector: list[float]) -> str:
    import numpy as np

    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def _usage(done: list[StreamEvent], prompt_lens: list[int]) -> Usage:
    """Usage of a request: each prompt counted once, every choice's completion."""
    prompt_tokens = sum(prompt_lens)
    completion = sum(d.completion_tokens for d in done)
    return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion, total_tokens=prompt_tokens + completion)


class _Merger:
    """Events of several generations as they come, tagged with the choice index. `close()`
    (always called) cancels every generation still running, freeing its slot."""

    def __init__(self, handles: list[GenerationHandle]) -> None:
        self.handles = handles
        self.queue: asyncio.Queue[tuple[int, StreamEvent]] = asyncio.Queue()
        self.open = len(handles)
        self.tasks = [asyncio.create_task(self._pump(i, h)) for i, h in enumerate(handles)]

    async def _pump(self, index: int, handle: GenerationHandle) -> None:
        while True:
            event = await handle.next_event()
            await self.queue.put((index, event))
            if event.kind != "delta":
                return

    async def next(self, timeout: float | None = None) -> tuple[int, StreamEvent] | None:
        """The next event; None once every generation has ended. TimeoutError after `timeout`."""
        if self.open == 0:
            return None
        index, event = await (asyncio.wait_for(self.queue.get(), timeout) if timeout else self.queue.get())
        if event.kind != "delta":
            self.open = 0 if event.kind == "error" else self.open - 1
        return index, event

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for handle in self.handles:
            handle.cancel()


async def _merged(handles: list[GenerationHandle]) -> AsyncIterator[tuple[int, StreamEvent]]:
    merger = _Merger(handles)
    try:
        while (item := await merger.next()) is not None:
            yield item
    finally:
        merger.close()


async def collect_all(handles: list[GenerationHandle], request: Request) -> list[_Answer]:
    """Wait for every choice's whole answer; a client that hangs up frees all their slots."""
    answers = [_Answer(text="", done=StreamEvent(kind="done")) for _ in handles]
    parts: list[list[str]] = [[] for _ in handles]
    merger = _Merger(handles)
    checked = time.monotonic()
    try:
        while True:
            try:
                item = await merger.next(_DISCONNECT_CHECK_S)
            except asyncio.TimeoutError:
                item = (-1, None)  # type: ignore[assignment]
            if item is None:
                break
            if time.monotonic() - checked >= _DISCONNECT_CHECK_S:  # tokens may flow without pause: check by the clock
                checked = time.monotonic()
                if await request.is_disconnected():
                    raise OpenAIError(499, "client closed the request", code="client_closed")
            index, event = item
            if event is None:
                continue
            if event.kind == "delta":
                parts[index].append(event.text)
                answers[index].logprobs += event.logprobs
            elif event.kind == "done":
                answers[index].done = event
            else:
                raise OpenAIError(503, event.error or "generation failed", type="server_error", code="generation_failed")
    finally:
        merger.close()
    for answer, texts in zip(answers, parts):
        answer.text = "".join(texts)
    return answers


def sse(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _data(payload: BaseModel | dict[str, Any]) -> str:
    body = payload.model_dump_json(exclude_none=False) if isinstance(payload, BaseModel) else json.dumps(payload)
    return f"data: {body}\n\n"
