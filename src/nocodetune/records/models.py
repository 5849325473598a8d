"""`models.json` at the workspace root: the model folders and GGUF files a user registered.

Registering points NoCodeTune at a model that lives outside the Hugging Face cache (a folder
saved by `save_pretrained`, or a `.gguf` file) so every face can offer it by name. The record
holds paths only; the files stay where they are and are never copied or deleted.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from nocodetune.errors import ConfigError
from nocodetune.records.io import read_model, write_model
from nocodetune.workspace import Workspace

MODELS_FILE = "models.json"
MODELS_FORMAT_VERSION = 1


class RegisteredModel(BaseModel):
    id: str = Field(description="Stable id, made from the name (what the REST routes take).")
    name: str = Field(description="What the UI shows.")
    path: str = Field(description="Absolute path of the model folder or .gguf file.")
    kind: Literal["folder", "gguf"]
    added_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


class RegisteredModels(BaseModel):
    format_version: int = MODELS_FORMAT_VERSION
    models: list[RegisteredModel] = Field(default_factory=list)


def models_path(ws: Workspace) -> Path:
    return ws.root / MODELS_FILE


def read_registered(ws: Workspace) -> RegisteredModels:
    """The registered models; an empty list when nothing was registered yet."""
    path = models_path(ws)
    if not path.is_file():
        return RegisteredModels()
    record = read_model(path, RegisteredModels, MODELS_FILE)
    if record.format_version > MODELS_FORMAT_VERSION:
        raise ConfigError(f"{MODELS_FILE} was written by a newer NoCodeTune (format {record.format_version})", file=MODELS_FILE, hint="upgrade NoCodeTune to use it")
    return record


def write_registered(ws: Workspace, record: RegisteredModels) -> None:
    write_model(models_path(ws), record)
