"""`/v1/models` and the inference routes: a fine-tuned model answers on the API's own base URL.

`POST /v1/chat/completions` (and `/v1/completions`, `/v1/embeddings`) with `model="ft:…"`
is relayed, streaming included, to a model server of that job, which the pool starts on
first use through the server manager and stops when idle. The request goes on unchanged
but for `model` (the id the model server knows); answers come back unchanged but for
`model` (the name the client asked for), and the model server's errors, already in
OpenAI's shape, pass through with their status and retry headers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from starlette.background import BackgroundTask
from starlette.responses import Response, StreamingResponse

from nocodetune.api.openai.errors import V1_ERRORS, OpenAIError, OpenAIRoute
from nocodetune.api.openai.models import Model, ModelList
from nocodetune.api.openai.state import OpenAIState, openai_state
from nocodetune.servers.on_demand import Lease
from nocodetune.settings import get_settings

router = APIRouter(route_class=OpenAIRoute, responses=V1_ERRORS)

_PASSED_HEADERS = ("content-type", "retry-after", "x-should-retry", "cache-control")


@router.get("/models", response_model=ModelList)
def list_models(state: OpenAIState = Depends(openai_state)) -> ModelList:
    """Fine-tuned models of succeeded jobs, then the base models."""
    return ModelList(data=[Model.of(m) for m in state.jobs.models()])


@router.get("/models/{model:path}", response_model=Model)
def retrieve_model(model: str, state: OpenAIState = Depends(openai_state)) -> Model:
    for item in state.jobs.models():
        if item.id == model:
            return Model.of(item)
    raise OpenAIError(404, f"The model `{model}` does not exist", param="model", code="model_not_found")


@router.post("/chat/completions")
async def chat_completions(request: Request, state: OpenAIState = Depends(openai_state)) -> Response:
    return await relay(request, state, "/v1/chat/completions")


@router.post("/completions")
async def completions(request: Request, state: OpenAIState = Depends(openai_state)) -> Response:
    return await relay(request, state, "/v1/completions")


@router.post("/embeddings")
async def embeddings(request: Request, state: OpenAIState = Depends(openai_state)) -> Response:
    return await relay(request, state, "/v1/embeddings")


async def relay(request: Request, state: OpenAIState, path: str) -> Response:
    """Send the request to the model's server (started if needed) and its answer back."""
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise OpenAIError(400, "the request body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict) or not isinstance(body.get("model"), str) or not body["model"]:
        raise OpenAIError(400, "model is required: a fine-tuned model (ft:…) or a base model from GET /v1/models", param="model", code="missing_required_parameter")
    asked = body["model"]
    target = await run_in_threadpool(state.jobs.chat_target, asked)
    lease = await run_in_threadpool(state.servers.acquire, target.key)
    released = False

    def release() -> None:
        nonlocal released
        if not released:
            released = True
            state.servers.release(lease)

    try:
        upstream = await _send(state, lease, path, {**body, "model": lease.served_name})
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in _PASSED_HEADERS}
        if upstream.status_code == 200 and upstream.headers.get("content-type", "").startswith("text/event-stream"):
            return StreamingResponse(_relay_stream(upstream, asked, release), status_code=200, headers=headers, background=BackgroundTask(release))
        content = await upstream.aread()
        await upstream.aclose()
        release()
        return Response(_renamed_json(content, asked), status_code=upstream.status_code, headers=headers)
    except BaseException:
        release()
        raise


async def _send(state: OpenAIState, lease: Lease, path: str, body: dict[str, Any]) -> httpx.Response:
    token = get_settings().api_token  # a model server the manager started requires the same token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        return await state.http.send(state.http.build_request("POST", lease.url + path, json=body, headers=headers), stream=True)
    except httpx.TransportError:
        state.servers.forget(lease)  # stopped or crashed: the SDK's retry starts or finds another
        raise OpenAIError(503, f"the model server for {lease.key[1]} is not answering", code="model_server_unavailable", retry_after=1) from None


async def _relay_stream(upstream: httpx.Response, asked: str, release: Any) -> AsyncIterator[bytes]:
    try:
        async for line in upstream.aiter_lines():
            if line.startswith("data: {"):
                line = "data: " + _renamed_json(line[6:].encode(), asked).decode()
            yield (line + "\n").encode()
    finally:
        await upstream.aclose()
        release()


def _renamed_json(content: bytes, asked: str) -> bytes:
    """A JSON answer with its `model` set to the name the client asked for (other content untouched)."""
    try:
        data = json.loads(content)
    except ValueError:
        return content
    if isinstance(data, dict) and "model" in data:
        data["model"] = asked
        return json.dumps(data).encode()
    return content
