"""A live API on 127.0.0.1 with the OpenAI routes, driven by the real `openai` SDK.

Jobs run `tests/openai/trainer.py` (the events contract of the real trainer, in a second)
unless a test asks for the real one. Validation runs the real pre-flight code: in this
process by default (`config.validate.preflight`, what `validate_in_worker` runs in its
child), so each job does not pay for a fresh interpreter importing transformers.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from nocodetune import db
from nocodetune.api.app import create_app
from nocodetune.api.openai import OpenAIOptions
from nocodetune.jobs.bootstrap import init_workspace
from nocodetune.jobs.service import JobService
from nocodetune.workspace import Workspace
from tests.live_server import serve_in_thread

TRAINER = Path(__file__).with_name("trainer.py")


def trainer_command(*extra: str) -> Callable[[Path], list[str]]:
    return lambda job_dir: [sys.executable, str(TRAINER), str(job_dir), *extra]


def chat_lines(n: int = 10) -> list[dict[str, Any]]:
    """OpenAI chat fine-tuning lines (a system message on some, as real files have)."""
    out = []
    for i in range(n):
        messages = [{"role": "user", "content": f"What is {i} plus {i}?"}, {"role": "assistant", "content": str(2 * i)}]
        if i % 3 == 0:
            messages.insert(0, {"role": "system", "content": "You add numbers."})
        out.append({"messages": messages})
    return out


def dpo_lines(n: int = 10) -> list[dict[str, Any]]:
    """OpenAI's DPO lines: input.messages, preferred_output, non_preferred_output."""
    return [
        {
            "input": {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"}], "tools": [], "parallel_tool_calls": True},
            "preferred_output": [{"role": "assistant", "content": str(2 * i)}],
            "non_preferred_output": [{"role": "assistant", "content": str(2 * i + 1)}],
        }
        for i in range(n)
    ]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


class CountRequests:
    """Counts the requests the server saw, by (method, path), so a test can tell a retry happened or not."""

    def __init__(self, app: ASGIApp, counts: Counter[tuple[str, str]]) -> None:
        self.app, self.counts = app, counts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.counts[(scope["method"], scope["path"])] += 1
        await self.app(scope, receive, send)


def in_process_preflight(ws: Any, resolved: Any, job_dir: Any) -> Any:
    from nocodetune.config.validate import preflight

    return preflight(ws, resolved, job_dir)


REAL_TRAINER = None  # command=REAL_TRAINER: jobs run `python -m nocodetune.training`
_TEST_TRAINER: Any = object()


@contextmanager
def openai_api(
    ws: Workspace,
    *,
    command: Callable[[Path], list[str]] | None = _TEST_TRAINER,
    options: OpenAIOptions | None = None,
    api_token: str | None = None,
) -> Iterator[tuple[str, Any, Counter[tuple[str, str]]]]:
    """(base URL, app, request counts) of a live API whose jobs run `command` (default: the test trainer)."""
    service = JobService(ws, command=trainer_command() if command is _TEST_TRAINER else command, poll_s=0.05, cancel_grace_s=120)
    app = create_app(ws, ("jobs",), job_service=service, api_token=api_token)
    app.state.openai_options = options or OpenAIOptions(validate=in_process_preflight)
    counts: Counter[tuple[str, str]] = Counter()
    app.add_middleware(CountRequests, counts=counts)
    with serve_in_thread(app, start_timeout=60) as url:
        yield url, app, counts


def sdk(url: str, **kw: Any) -> openai.OpenAI:
    """The real client, with its default retries unless a test says otherwise."""
    return openai.OpenAI(base_url=f"{url}/v1", api_key=kw.pop("api_key", "sk-test"), **kw)


def check(obj: Any) -> Any:
    """Validate what the server sent against the SDK's own type (the client itself only constructs).

    The SDK's FineTuningJob status literal lacks "paused", though the SDK has pause():
    a paused job is checked with that one field set aside.
    """
    raw = obj.to_dict()
    if raw.get("object") == "fine_tuning.job" and raw.get("status") == "paused":
        type(obj).model_validate({**raw, "status": "running"})
        return obj
    return type(obj).model_validate(raw)


def wait_status(client: openai.OpenAI, job_id: str, wanted: set[str], timeout: float = 120) -> Any:
    import time

    deadline = time.monotonic() + timeout
    job = None
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in wanted:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not reach {wanted} within {timeout}s: {job}")


@pytest.fixture
def oa_ws(workspace_dir: Path) -> Iterator[Workspace]:
    """An initialised workspace (bases, demo dataset)."""
    init_workspace(workspace_dir)
    yield Workspace(workspace_dir)
    db.dispose_all()


@pytest.fixture(scope="session")
def tiny_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LoRA adapter on the tiny model (random, non-zero), like a trained job's outputs/adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = tmp_path_factory.mktemp("tiny-adapter")
    torch.manual_seed(3)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model_dir), LoraConfig(r=4, lora_alpha=32, target_modules="all-linear", init_lora_weights=False))
    model.save_pretrained(folder)
    return folder
