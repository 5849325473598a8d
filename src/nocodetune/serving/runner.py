"""Starts a model server: load the model, start the engine, run uvicorn.

Used by `python -m nocodetune.serving` (what the server manager spawns) and by the
foreground `nocodetune server start model`.
"""

from __future__ import annotations

import ipaddress
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, model_validator

from nocodetune.errors import ConfigError
from nocodetune.settings import apply_network_policy, get_settings

if TYPE_CHECKING:
    from fastapi import FastAPI

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
    threads: int | None = Field(None, ge=1, description="CPU threads for torch; default: half the CPUs (see default_threads).")

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
    """Load the model and wire engine, metrics and app together."""
    from nocodetune.records.schema import ModelSection
    from nocodetune.serving.engine import GenerationEngine
    from nocodetune.serving.loader import load_job, load_model
    from nocodetune.serving.metrics import ServingMetrics
    from nocodetune.serving.openai_app import create_app
    from nocodetune.workspace import JobPaths

    if options.job_dir is not None:
        loaded = load_job(JobPaths(options.job_dir))
    else:
        assert options.model is not None
        loaded = load_model(ModelSection(source=options.model))
    metrics = ServingMetrics()
    engine = GenerationEngine(loaded.model, loaded.tokenizer, max_batch_size=options.max_batch_size, max_queue=options.max_queue, metrics=metrics)
    app = create_app(
        engine,
        model_name=options.served_name(),
        source=loaded.source,
        api_token=get_settings().api_token,
        default_max_tokens=options.default_max_tokens,
        metrics=metrics,
    )
    return app


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
