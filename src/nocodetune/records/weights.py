"""`nocodetune_weights.json`: what a saved model or adapter folder was built from.

Written next to every model NoCodeTune saves (outputs/model, outputs/adapter,
outputs/merged, exports). It names the root base model by its public identity (the
embedded model's name, a hub id, or a path when that is all there is) with the hash of
its weights, and the adapters applied on top of it in order, so an adapter folder
copied to another machine still says exactly which weights it belongs on.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from nocodetune.errors import NocodetuneError
from nocodetune.records.io import read_model, write_model

WEIGHTS_FILE = "nocodetune_weights.json"


class BaseIdentity(BaseModel):
    name: str = Field(description="Public identity: the embedded model's name, a hub id, or a local path.")
    kind: str = Field(description="default | hub_cache | folder | gguf (how model_source found it).")
    sha256: str | None = Field(None, description="Hash of the base weights file(s) as loaded (the GGUF file, or the safetensors files in name order).")


class AppliedLayer(BaseModel):
    job: str
    kind: str = Field(description="adapter | model | merged")
    sha256: str | None = None


class WeightsRecord(BaseModel):
    format_version: int = 1
    base: BaseIdentity
    layers: list[AppliedLayer] = Field(default_factory=list, description="Parent jobs' results merged into the base, oldest first.")
    job: str | None = Field(None, description="The job whose training produced this folder.")


def write_weights(folder: Path, record: WeightsRecord) -> None:
    write_model(folder / WEIGHTS_FILE, record)


def read_weights(folder: Path) -> WeightsRecord | None:
    path = folder / WEIGHTS_FILE
    if not path.is_file():
        return None
    try:
        return read_model(path, WeightsRecord)
    except NocodetuneError:
        return None
