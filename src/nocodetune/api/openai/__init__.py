"""The OpenAI fine-tuning API on the API server, under `/v1`, so OpenAI SDK scripts run unchanged.

`/v1/files` (a file is a dataset version), `/v1/fine_tuning/jobs` (a job is a NoCodeTune
job on the lora_train base), `/v1/models` and `/v1/chat/completions` (a fine-tuned model
is served on first use). Errors have OpenAI's shape (`errors.render_error`). The meaning
lives in `nocodetune.jobs.openai_jobs`; the records in `nocodetune.records.openai`.
"""

from fastapi import APIRouter

from nocodetune.api.openai import files, jobs, serving
from nocodetune.api.openai.state import OpenAIOptions, lifespan

router = APIRouter(lifespan=lifespan)
router.include_router(files.router)
router.include_router(jobs.router)
router.include_router(serving.router)

__all__ = ["OpenAIOptions", "router"]
