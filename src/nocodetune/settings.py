"""Process-wide settings, read from the environment (prefix NOCODETUNE_).

Also the one place that switches Hugging Face libraries off the network: nothing
NoCodeTune runs may reach a hub unless the user opts in with NOCODETUNE_ALLOW_HUB_DOWNLOADS=1.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="NOCODETUNE_", extra="ignore")

    workspace: Path | None = Field(default=None, description="Workspace folder; else the cwd or its parents, else ./ModelTrainingWorkspace.")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the registry; default sqlite in the workspace.")
    cache_dir: Path = Field(default=Path.home() / ".cache" / "nocodetune", description="Converted models (GGUF → safetensors) and other caches.")
    allow_hub_downloads: bool = Field(default=False, description="Let Hugging Face libraries download from the hub.")
    allow_hub_uploads: bool = Field(default=False, description="Let `job export --format hub` push a model to the Hugging Face Hub (it also needs your token).")
    api_token: str | None = Field(default=None, description="Bearer token; required to bind the API to a non-loopback address.")
    allowed_hosts: str = Field(default="", description="Comma list of extra host names (name or name:port) the API and model servers answer to, e.g. behind a reverse proxy; loopback names and the bound address always work.")
    max_upload_mb: int = Field(default=512, description="Largest dataset upload accepted by the API, in MiB.")
    max_concurrent_jobs: int | None = Field(default=None, description="Jobs run at once; default 1 on CPU, one per GPU.")
    training_command: str | None = Field(
        default=None,
        description="Command that runs one job, with {python} and {job_dir} placeholders (e.g. 'accelerate launch -m nocodetune.training {job_dir}'); default: {python} -m nocodetune.training {job_dir}.",
    )
    serve_backend: Literal["auto", "transformers", "llama.cpp"] = Field(
        default="auto", description="Model servers: auto (llama.cpp for GGUF files when installed, else transformers), transformers or llama.cpp."
    )
    serve_precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        default="auto", description="Model servers, transformers backend: weight precision; auto is the measured CPU default (docs/serving.md)."
    )
    cancel_grace_seconds: float = Field(default=60.0, description="How long a cancelled job may take to save its checkpoint before it is killed.")
    executor: Literal["local", "ray"] = Field(default="local", description="What runs jobs whose resources.executor is unset: local processes or a Ray cluster.")
    ray_address: str | None = Field(
        default=None, description="Ray cluster's job-submission (dashboard) address, e.g. http://HEAD:8265, for jobs whose resources.ray_address is unset."
    )
    model_idle_seconds: float = Field(default=600.0, gt=0, description="How long a model server the API started for /v1 chat stays up without requests.")


def get_settings() -> Settings:
    return Settings()


_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "WANDB_DISABLED": "true",
    "WANDB_MODE": "disabled",
    "HF_HUB_DISABLE_EXPERIMENTAL_WARNING": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "GRADIO_ANALYTICS_ENABLED": "False",
    # Ray: no usage statistics (ray start, the job driver and Ray Train read it).
    "RAY_USAGE_STATS_ENABLED": "0",
    "FASTAPI_OTEL_AUTO_CONFIGURE": "false",  # FastAPI's OpenTelemetry exporters stay off
    "OTEL_SDK_DISABLED": "true",
}


def apply_network_policy(settings: Settings | None = None) -> None:
    """Turn hub access and telemetry off in this process and its children.

    Must run before any Hugging Face import; `nocodetune.training`, `nocodetune.serving`
    and the CLI entry point call it first thing.
    """
    settings = settings or get_settings()
    hub_keys = {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"}
    for key, value in _OFFLINE_ENV.items():
        if key in hub_keys:
            if not settings.allow_hub_downloads:
                os.environ[key] = value  # forced: a stray user env must not re-enable downloads
        else:
            os.environ.setdefault(key, value)
