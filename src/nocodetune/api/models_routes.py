"""REST: the models catalog (`/api/models`). Thin: parse, call `servers.catalog`, shape."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from nocodetune.api.deps import workspace
from nocodetune.api.errors import API_ERRORS, error_responses
from nocodetune.servers import catalog
from nocodetune.servers.catalog import Catalog, Download, ModelEntry
from nocodetune.workspace import Workspace

router = APIRouter(responses=API_ERRORS)


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Absolute path of a model folder (config.json + weights) or a .gguf file on this machine.")
    name: str | None = Field(None, description="Name to show; default the folder or file name.")


class DownloadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    repo_id: str = Field(description="Hugging Face model id, 'owner/name'.")
    revision: str | None = None


@router.get("", response_model=Catalog)
def list_models(ws: Workspace = Depends(workspace)) -> Catalog:
    """Every model this machine can use, found without the network."""
    return catalog.catalog(ws)


@router.post("", response_model=ModelEntry, status_code=201, responses=error_responses(409))
def register_model(body: RegisterRequest, ws: Workspace = Depends(workspace)) -> ModelEntry:
    return catalog.register(ws, body.path, body.name)


@router.delete("/{model_id}", status_code=204)
def unregister_model(model_id: str, ws: Workspace = Depends(workspace)) -> None:
    catalog.unregister(ws, model_id)


@router.post("/download", response_model=Download, status_code=202, responses=error_responses(409))
def download_model(body: DownloadRequest) -> Download:
    """Opt-in only (NOCODETUNE_ALLOW_HUB_DOWNLOADS=1): fetch a hub model into the local cache."""
    return catalog.start_download(body.repo_id, body.revision)
