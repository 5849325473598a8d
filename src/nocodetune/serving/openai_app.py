"""The OpenAI-compatible HTTP face of a `GenerationEngine`.

Routes: GET /v1/models, POST /v1/chat/completions, POST /v1/completions (both with SSE
streaming), GET /health, GET /metrics. Every error has OpenAI's shape
`{"error": {"message", "type", "param", "code"}}`, because SDKs parse exactly that.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Callable

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nocodetune import __version__
from nocodetune.serving.engine import GenerationEngine, GenerationHandle, QueueFullError, SamplingParams, StreamEvent
from nocodetune.serving.metrics import ServingMetrics
from nocodetune.serving.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChunkChoice,
    ChunkDelta,
    Completion,
    CompletionChoice,
    CompletionRequest,
    ErrorBody,
    ErrorResponse,
    ModelCard,
    ModelList,
    Usage,
    new_id,
)


_DISCONNECT_CHECK_S = 0.5  # how often a non-streaming request checks that its client is still there


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
        return JSONResponse(status_code=self.status, content=ErrorResponse(error=self.body).model_dump(), headers=self.headers)


class _CountRequests:
    """Counts /v1 answers by status. Plain ASGI, not `@app.middleware("http")`: Starlette's
    BaseHTTPMiddleware hides the client's disconnect from `request.is_disconnected()`."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/"):
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
            self.metrics.count_request(scope["path"], status)


class ServedModel(BaseModel):
    name: str
    source: str
    created: int


def create_app(
    engine: GenerationEngine,
    *,
    model_name: str,
    source: str = "",
    api_token: str | None = None,
    default_max_tokens: int = 256,
    metrics: ServingMetrics | None = None,
) -> FastAPI:
    """Build the app around a running engine; `api_token` makes /v1 require `Bearer <token>`."""
    metrics = metrics or ServingMetrics()
    served = ServedModel(name=model_name, source=source, created=int(time.time()))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(engine.shutdown)  # waiting requests get an error, not a hang

    app = FastAPI(title=f"NoCodeTune model server: {model_name}", version=__version__, lifespan=lifespan)
    app.state.engine, app.state.metrics, app.state.served = engine, metrics, served

    @app.exception_handler(OpenAIError)
    async def _openai_error(_: Request, exc: OpenAIError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
        if first.get("type") == "json_invalid":
            return OpenAIError(400, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', '')}".rstrip(": "), code="invalid_json").response()
        return OpenAIError(400, f"{param or 'body'}: {first.get('msg', 'invalid value')}", param=param, code="invalid_value").response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return OpenAIError(exc.status_code, str(exc.detail), code=code).response()

    app.add_middleware(_CountRequests, metrics=metrics)

    def check_token(request: Request) -> None:
        if api_token is None:
            return
        given = request.headers.get("authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {api_token}".encode()):
            raise OpenAIError(401, "missing or wrong API key (send Authorization: Bearer <NOCODETUNE_API_TOKEN>)", code="invalid_api_key")

    def check_model(name: str) -> None:
        if name != served.name:
            raise OpenAIError(404, f"the model {name!r} does not exist; this server serves {served.name!r}", param="model", code="model_not_found")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": served.name, "active": engine.active, "queued": engine.queue_depth}

    @app.get("/metrics")
    def prometheus() -> Response:
        return Response(metrics.render(), media_type=metrics.content_type)

    @app.get("/v1/models", dependencies=[Depends(check_token)])
    def list_models() -> ModelList:
        return ModelList(data=[ModelCard(id=served.name, created=served.created, max_model_len=engine.context_window, source=served.source)])

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(check_token)])
    def get_model(model_id: str) -> ModelCard:
        check_model(model_id)
        return ModelCard(id=served.name, created=served.created, max_model_len=engine.context_window, source=served.source)

    def sampling(body: ChatCompletionRequest | CompletionRequest, prompt_len: int) -> SamplingParams:
        if (body.n or 1) != 1:
            raise OpenAIError(400, "only n=1 is supported", param="n", code="unsupported_value")
        room = engine.context_window - prompt_len
        if room <= 0:
            raise OpenAIError(
                400, f"the prompt has {prompt_len} tokens, the context window is {engine.context_window}", param="messages", code="context_length_exceeded"
            )
        requested = body.requested_max_tokens()
        if requested is not None and requested > room:
            raise OpenAIError(
                400,
                f"max_tokens={requested} plus the prompt's {prompt_len} tokens exceeds the context window of {engine.context_window} tokens",
                param="max_tokens",
                code="context_length_exceeded",
            )
        return SamplingParams(
            max_new_tokens=requested or min(default_max_tokens, room),
            temperature=1.0 if body.temperature is None else body.temperature,
            top_p=1.0 if body.top_p is None else body.top_p,
            seed=body.seed,
            stop=tuple(body.stop_list()),
        )

    def submit(prompt_ids: list[int], params: SamplingParams) -> GenerationHandle:
        try:
            return engine.submit(prompt_ids, params)
        except QueueFullError as exc:
            raise OpenAIError(429, str(exc), type="rate_limit_error", code="rate_limit_exceeded", headers={"Retry-After": str(exc.retry_after)}) from exc

    @app.post("/v1/chat/completions", dependencies=[Depends(check_token)])
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        check_model(body.model)
        prompt_ids = chat_prompt_ids(engine.tokenizer, body)
        handle = submit(prompt_ids, sampling(body, len(prompt_ids)))
        started = time.perf_counter()
        if body.stream:
            return sse(stream_chat(handle, body, served.name, metrics, started))
        text, done = await collect(handle, request)
        metrics.observe_latency("chat", time.perf_counter() - started)
        return JSONResponse(
            ChatCompletion(
                model=served.name,
                choices=[ChatChoice(message=AssistantMessage(content=text), finish_reason=done.finish_reason)],
                usage=usage(done),
            ).model_dump()
        )

    @app.post("/v1/completions", dependencies=[Depends(check_token)])
    async def completions(body: CompletionRequest, request: Request) -> Response:
        check_model(body.model)
        prompt = body.prompt
        if isinstance(prompt, list):
            if len(prompt) != 1:
                raise OpenAIError(400, "exactly one prompt per request is supported", param="prompt", code="unsupported_value")
            prompt = prompt[0]
        if not prompt:
            raise OpenAIError(400, "prompt must not be empty", param="prompt", code="invalid_value")
        prompt_ids = engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        handle = submit(prompt_ids, sampling(body, len(prompt_ids)))
        started = time.perf_counter()
        prefix = prompt if body.echo else ""
        if body.stream:
            return sse(stream_completion(handle, body, served.name, metrics, started, prefix))
        text, done = await collect(handle, request)
        metrics.observe_latency("completions", time.perf_counter() - started)
        return JSONResponse(
            Completion(model=served.name, choices=[CompletionChoice(text=prefix + text, finish_reason=done.finish_reason)], usage=usage(done)).model_dump()
        )

    return app


def chat_prompt_ids(tokenizer: Any, body: ChatCompletionRequest) -> list[int]:
    if not body.messages:
        raise OpenAIError(400, "messages must hold at least one message", param="messages", code="invalid_value")
    for i, message in enumerate(body.messages):
        if isinstance(message.content, list) and any(p.type != "text" for p in message.content):
            raise OpenAIError(400, "only text content parts are supported", param=f"messages.{i}.content", code="unsupported_value")
    if not getattr(tokenizer, "chat_template", None):
        raise OpenAIError(400, "this model has no chat template; use /v1/completions", param="messages", code="no_chat_template")
    conversation = [{"role": "system" if m.role == "developer" else m.role, "content": m.text()} for m in body.messages]
    try:
        text = tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    except Exception as exc:  # templates raise on role orders they do not accept
        raise OpenAIError(400, f"the model's chat template refused these messages: {exc}", param="messages", code="invalid_value") from exc
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def usage(done: StreamEvent) -> Usage:
    return Usage(prompt_tokens=done.prompt_tokens, completion_tokens=done.completion_tokens, total_tokens=done.prompt_tokens + done.completion_tokens)


async def collect(handle: GenerationHandle, request: Request) -> tuple[str, StreamEvent]:
    """Wait for the whole answer; a client that hangs up frees its slot."""
    parts: list[str] = []
    checked = time.monotonic()
    try:
        while True:
            try:
                event: StreamEvent | None = await asyncio.wait_for(handle.next_event(), timeout=_DISCONNECT_CHECK_S)
            except asyncio.TimeoutError:
                event = None
            if time.monotonic() - checked >= _DISCONNECT_CHECK_S:  # tokens may flow without pause: check by the clock
                checked = time.monotonic()
                if await request.is_disconnected():
                    raise OpenAIError(499, "client closed the request", code="client_closed")
            if event is None:
                continue
            if event.kind == "delta":
                parts.append(event.text)
            elif event.kind == "done":
                return "".join(parts), event
            else:
                raise OpenAIError(503, event.error or "generation failed", type="server_error", code="generation_failed")
    finally:
        handle.cancel()  # no-op when finished; stops generation if we are unwinding early


def sse(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _data(payload: BaseModel | dict[str, Any]) -> str:
    body = payload.model_dump_json(exclude_none=False) if isinstance(payload, BaseModel) else json.dumps(payload)
    return f"data: {body}\n\n"


async def _relay(
    handle: GenerationHandle, opening: list[str], delta: Callable[[str], str], done: Callable[[Any], list[str]]
) -> AsyncIterator[str]:
    """Engine events → SSE lines, always closed by [DONE]; a client that leaves frees its slot."""
    try:
        for line in opening:
            yield line
        while True:
            event = await handle.next_event()
            if event.kind == "delta":
                yield delta(event.text)
            elif event.kind == "done":
                for line in done(event):
                    yield line
                break
            else:
                yield _data({"error": ErrorBody(message=event.error or "generation failed", type="server_error", code="generation_failed").model_dump()})
                break
        yield "data: [DONE]\n\n"
    finally:
        handle.cancel()


def stream_chat(handle: GenerationHandle, body: ChatCompletionRequest, model: str, metrics: ServingMetrics, started: float) -> AsyncIterator[str]:
    chunk_id, created = new_id("chatcmpl"), int(time.time())

    def chunk(delta: ChunkDelta, finish: str | None = None, usage_: Usage | None = None, choices: bool = True) -> str:
        return _data(
            ChatCompletionChunk(
                id=chunk_id,
                created=created,
                model=model,
                choices=[ChunkChoice(delta=delta, finish_reason=finish)] if choices else [],
                usage=usage_,
            )
        )

    def done(event: Any) -> list[str]:
        lines = [chunk(ChunkDelta(), finish=event.finish_reason)]
        if body.include_usage_in_stream():
            lines.append(chunk(ChunkDelta(), usage_=usage(event), choices=False))
        metrics.observe_latency("chat", time.perf_counter() - started)
        return lines

    return _relay(handle, [chunk(ChunkDelta(role="assistant", content=""))], lambda text: chunk(ChunkDelta(content=text)), done)


def stream_completion(
    handle: GenerationHandle, body: CompletionRequest, model: str, metrics: ServingMetrics, started: float, prefix: str
) -> AsyncIterator[str]:
    chunk_id, created = new_id("cmpl"), int(time.time())

    def chunk(text: str, finish: str | None = None) -> str:
        return _data(Completion(id=chunk_id, created=created, model=model, choices=[CompletionChoice(text=text, finish_reason=finish)]))

    def done(event: Any) -> list[str]:
        lines = [chunk("", finish=event.finish_reason)]
        if body.include_usage_in_stream():
            lines.append(_data(Completion(id=chunk_id, created=created, model=model, choices=[], usage=usage(event))))
        metrics.observe_latency("completions", time.perf_counter() - started)
        return lines

    return _relay(handle, [chunk(prefix)] if prefix else [], chunk, done)
