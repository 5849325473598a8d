"""Starts a model server: load the model, start the engine, run uvicorn.

Used by `python -m nocodetune.serving` (what the server manager spawns) and by the
foreground `nocodetune server start model`.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from typing import Literal

from pydantic import BaseModel, Field, model_validator

from nocodetune.errors import ConfigError
from nocodetune.settings import apply_network_policy, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

    from nocodetune.serving.backend import ServingBackend

log = logging.getLogger(__name__)


class ServeOptions(BaseModel):
    """What to serve and how; exactly one of `job_dir` and `model`."""

    job_dir: Path | None = Field(None, description="A job folder whose outputs are served.")
    model: str | None = Field(None, description="'default', a local model folder, a .gguf file or a hub id in the local cache.")
    name: str | None = Field(None, description="Model id clients send; default: the job name or the model's name.")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    max_batch_size: int = Field(16, ge=1, le=256, description="Sequences decoded together.")
    max_queue: int = Field(64, ge=0, description="Requests waiting for a slot before new ones get 429.")
    default_max_tokens: int = Field(256, ge=1, description="max_tokens when a chat request gives none.")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch and llama.cpp; default: half the CPUs (see default_threads).")
    backend: Literal["auto", "transformers", "llama.cpp"] = Field(
        default_factory=lambda: get_settings().serve_backend,
        description="auto: llama.cpp for a GGUF file when llama-cpp-python is installed, else transformers (NOCODETUNE_SERVE_BACKEND).",
    )
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        default_factory=lambda: get_settings().serve_precision,
        description="Weights of a transformers model; auto: the measured CPU default (serving.hf.CPU_DEFAULT_PRECISION), the loader's choice on a GPU (NOCODETUNE_SERVE_PRECISION).",
    )
    kv_tokens: int = Field(16384, ge=256, le=1 << 20, description="llama.cpp: cells of the KV cache shared by all running requests.")

    @model_validator(mode="after")
    def _one_source(self) -> ServeOptions:
        if self.job_dir is not None and self.model is not None:
            raise ValueError("give either a job or a model, not both")
        if self.job_dir is None and self.model is None:
            self.model = "default"
        return self

    def served_name(self) -> str:
        if self.name:
            return self.name
        if self.job_dir is not None:
            return self.job_dir.name
        assert self.model is not None
        path = Path(self.model).expanduser()
        if path.exists():
            return path.stem if path.is_file() else path.name
        return self.model


def build_app(options: ServeOptions) -> FastAPI:
    """Load the model on the backend that fits it and wire backend, metrics and app together."""
    from nocodetune.serving.metrics import ServingMetrics
    from nocodetune.serving.openai_app import create_app

    metrics = ServingMetrics()
    backend, source = load_backend(options, metrics=metrics)
    return create_app(
        backend,
        model_name=options.served_name(),
        source=source,
        api_token=get_settings().api_token,
        default_max_tokens=options.default_max_tokens,
        metrics=metrics,
        public=not _is_loopback(options.host),
    )


def choose_backend(options: ServeOptions, *, is_gguf: bool, embedded: bool = False) -> Literal["transformers", "llama.cpp"]:
    """llama.cpp for a GGUF file the user gave when llama-cpp-python is importable; transformers otherwise.

    The embedded default model is a GGUF too, but jobs train on its weights dequantised to
    fp32, and its Q4_1 file run natively agreed with that on only 40% of greedy answers
    (bench/RESULTS.md): served as trained, the base in the playground is the model the
    jobs started from. A backend asked for by name that cannot serve the model is refused,
    not substituted.
    """
    from nocodetune.serving import llamacpp

    if options.backend == "transformers":
        return "transformers"
    if options.backend == "llama.cpp":
        if not is_gguf:
            raise ConfigError("the llama.cpp backend serves GGUF files only", field="backend", hint="give --model PATH.gguf, or use --backend transformers")
        if not llamacpp.available():
            raise ConfigError(
                "the llama.cpp backend needs llama-cpp-python, which is not installed",
                field="backend",
                hint='pip install "nocodetune[llamacpp]" (build it with CMAKE_ARGS="-DGGML_NATIVE=OFF", see docs/serving.md)',
            )
        return "llama.cpp"
    return "llama.cpp" if is_gguf and not embedded and llamacpp.available() else "transformers"


def load_backend(options: ServeOptions, *, metrics: object = None) -> tuple[ServingBackend, str]:
    """(backend, human-readable source) for what `options` asks to serve."""
    from nocodetune.model_source import resolve_model
    from nocodetune.records.schema import ModelSection
    from nocodetune.serving.hf import transformers_backend
    from nocodetune.serving.loader import load_job, load_model
    from nocodetune.workspace import JobPaths

    common = {"max_batch_size": options.max_batch_size, "max_queue": options.max_queue, "metrics": metrics}
    if options.job_dir is not None:
        if options.backend == "llama.cpp":
            raise ConfigError("a job's output is served by the transformers backend; export it as GGUF to serve it with llama.cpp", field="backend")
        loaded = load_job(JobPaths(options.job_dir))
        return transformers_backend(loaded.model, loaded.tokenizer, precision=options.precision, **common), loaded.source  # type: ignore[arg-type]
    assert options.model is not None
    resolved = resolve_model(ModelSection(source=options.model))
    if choose_backend(options, is_gguf=resolved.is_gguf, embedded=resolved.kind == "default") == "llama.cpp":
        if options.precision != "auto":
            raise ConfigError(
                f"precision {options.precision} applies to the transformers backend; a GGUF file's precision is its quantisation",
                field="precision",
                hint="leave precision at auto, or serve the GGUF converted with --backend transformers",
            )
        from nocodetune.serving.llamacpp import llamacpp_backend

        path = resolved.path / str(resolved.gguf_file)
        threads = options.threads or default_threads()
        backend = llamacpp_backend(path, kv_tokens=options.kv_tokens, threads=threads, **common)  # type: ignore[arg-type]
        return backend, f"{resolved.display_name} ({path}, llama.cpp)"
    loaded = load_model(ModelSection(source=options.model))
    return transformers_backend(loaded.model, loaded.tokenizer, precision=options.precision, **common), loaded.source  # type: ignore[arg-type]


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_threads() -> int:
    """Half the CPUs, at least one. On a CPU the decode step is a handful of small matmuls:
    more threads than free cores makes OpenMP spin and wait (measured on a shared 2-core
    machine: 2 threads 326 ms/step, 1 thread 60 ms/step), and the HTTP side needs a core too."""
    import os

    return max(1, (os.cpu_count() or 2) // 2)


def serve(options: ServeOptions) -> None:
    """Run the model server in this process until SIGINT/SIGTERM."""
    if not _is_loopback(options.host) and not get_settings().api_token:
        raise ConfigError(
            f"refusing to serve on {options.host} without an API token",
            field="host",
            hint="set NOCODETUNE_API_TOKEN (clients send it as their OpenAI api_key), or use --host 127.0.0.1",
        )
    apply_network_policy()
    import torch
    import uvicorn

    if not torch.cuda.is_available():
        torch.set_num_threads(options.threads or default_threads())
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("loading %s", options.job_dir or options.model)
    app = build_app(options)
    uvicorn.run(app, host=options.host, port=options.port, log_level="info", timeout_graceful_shutdown=5)
