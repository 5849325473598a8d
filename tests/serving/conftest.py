"""Fixtures: live model servers (uvicorn in a thread on 127.0.0.1) on the tiny model and on
a LoRA adapter laid out like a finished job's outputs."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import serve_in_thread


@contextmanager
def live_server(app: Any) -> Iterator[str]:
    """Serve `app` on a free loopback port; stop it (and its engine) on exit."""
    try:
        with serve_in_thread(app) as url:
            yield url
    finally:
        app.state.backend.shutdown()


def build(model: str | None = None, job_dir: Path | None = None, **options: Any) -> Any:
    """A model server app. fp32 unless asked otherwise: these tests compare answers token for
    token with a plain transformers forward pass of the same weights."""
    from nocodetune.serving.runner import ServeOptions, build_app

    if model not in ("default", None) and not str(model).endswith(".gguf") or job_dir is not None:
        options.setdefault("precision", "fp32")
    return build_app(ServeOptions(model=model, job_dir=job_dir, **options))


def served(app: Any) -> tuple[Any, Any]:
    """(model, tokenizer) a transformers-backed app serves."""
    backend = app.state.backend
    return backend.engine.runner.model, backend.vocab.tokenizer


@pytest.fixture(scope="module")
def tiny_server(tiny_model_dir: Path) -> Iterator[tuple[str, Any]]:
    app = build(model=str(tiny_model_dir), name="tiny")
    with live_server(app) as url:
        yield url, app


# A Hermes-style template (Qwen 2.5's shape): tools listed in the system turn, calls written
# as <tool_call>{"name": ..., "arguments": ...}</tool_call>, answers in <tool_response>.
TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\nYou may call these tools:\n<tools>"
    "{%- for tool in tools %}\n{{ tool | tojson }}{%- endfor %}\n</tools>\n"
    'Call one as <tool_call>{"name": NAME, "arguments": ARGS}</tool_call><|im_end|>\n{% endif %}'
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant"
    "{%- for call in message.tool_calls %}\n<tool_call>\n"
    '{"name": "{{ call.function.name }}", "arguments": {{ call.function.arguments | tojson }}}\n</tool_call>'
    "{%- endfor %}<|im_end|>\n"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n</tool_response><|im_end|>\n"
    "{%- else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@pytest.fixture(scope="session")
def tool_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a chat template that renders tools (Hermes format), and a longer
    context: the tiny vocabulary spends a token on almost every character of a JSON schema."""
    import json
    import shutil

    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("tiny-tools")
    for item in tiny_model_dir.iterdir():
        if item.is_file():
            shutil.copy(item, folder / item.name)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = TOOL_TEMPLATE
    tokenizer.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "max_position_embeddings": 2048}))
    return folder


def need_llamacpp() -> None:
    from nocodetune.serving.llamacpp import available

    if not available():
        pytest.skip('llama-cpp-python is not installed (pip install "nocodetune[llamacpp]", built with CMAKE_ARGS="-DGGML_NATIVE=OFF")')


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model's weights as a float32 GGUF file (the llama.cpp backend's test model)."""
    from tests.serving.tiny_gguf import write_tiny_gguf

    return write_tiny_gguf(tiny_model_dir, tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf")


@pytest.fixture(scope="module")
def llama_server(tiny_gguf: Path) -> Iterator[tuple[str, Any]]:
    need_llamacpp()
    app = build(model=str(tiny_gguf), name="tiny", kv_tokens=4096)
    with live_server(app) as url:
        yield url, app


@pytest.fixture(scope="module", params=["transformers", "llama.cpp"])
def any_server(request: pytest.FixtureRequest) -> tuple[str, Any]:
    """The tiny model served by each backend in turn."""
    name = "tiny_server" if request.param == "transformers" else "llama_server"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def adapter_job_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jobs/lora_job with resolved.json naming the tiny base and outputs/adapter (random,
    non-zero LoRA weights, so the adapter visibly changes the output)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from nocodetune.records.job import ResolvedJob
    from nocodetune.records.schema import JobConfig, ModelSection
    from nocodetune.workspace import JobPaths

    job = JobPaths(tmp_path_factory.mktemp("ws") / "jobs" / "lora_job")
    job.adapter_dir.mkdir(parents=True)
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    peft_model = get_peft_model(base, LoraConfig(r=8, lora_alpha=64, target_modules="all-linear", init_lora_weights=False))
    peft_model.save_pretrained(job.adapter_dir)
    ResolvedJob(
        name="lora_job",
        created_at=datetime.now(timezone.utc).isoformat(),
        config=JobConfig(method="lora", model=ModelSection(source=str(tiny_model_dir))),
    ).write(job.resolved_json)
    return job.root


def greedy_reference(model: Any, tokenizer: Any, prompt_ids: list[int], max_new_tokens: int) -> str:
    """What plain HF generate answers, one request at a time (the batching must match it)."""
    import torch

    with torch.inference_mode():
        out = model.generate(torch.tensor([prompt_ids], device=model.device), max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=0)
    new = [t for t in out[0, len(prompt_ids) :].tolist() if t != tokenizer.eos_token_id]
    return tokenizer.decode(new, skip_special_tokens=True)


def chat_ids(tokenizer: Any, content: str) -> list[int]:
    text = tokenizer.apply_chat_template([{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
