"""REST: the AI servers of the workspace (list, start, inspect, logs, stop).

Starting waits for the new server's /health, which can take minutes for a model server
(loading, maybe converting a GGUF), so these handlers are plain `def`: FastAPI runs them
in its thread pool and the event loop stays free.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from nocodetune.api.errors import API_ERRORS, error_responses
from nocodetune.servers import manager
from nocodetune.servers.manager import ServerInfo
from nocodetune.records.servers import ServerKind, ServerRecord
from nocodetune.workspace import Workspace

router = APIRouter(responses=API_ERRORS)


class StartServer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: ServerKind
    job: str | None = Field(None, description="model servers: serve this job's trained model or adapter.")
    model: str | None = Field(None, description="model servers: 'default', a model folder, a .gguf file or a cached hub id.")
    host: str = "127.0.0.1"
    port: int | None = Field(None, ge=1, le=65535, description="Default: a free port.")


class ServerLogs(BaseModel):
    id: str
    lines: list[str]


def _ws(request: Request) -> Workspace:
    return request.app.state.workspace


@router.get("", response_model=list[ServerInfo])
def list_servers(request: Request) -> list[ServerInfo]:
    return manager.list_servers(_ws(request))


@router.post("", status_code=201, response_model=ServerRecord, responses=error_responses(409))
def start_server(body: StartServer, request: Request) -> ServerRecord:
    """Start a background server; answers once it is healthy."""
    return manager.start(_ws(request), body.kind, job=body.job, model=body.model, host=body.host, port=body.port, background=True)


@router.get("/{server_id}", response_model=ServerInfo)
def get_server(server_id: str, request: Request) -> ServerInfo:
    return manager.status(_ws(request), server_id)


@router.get("/{server_id}/logs", response_model=ServerLogs)
def server_logs(server_id: str, request: Request, tail: int = Query(200, ge=0, le=10000)) -> ServerLogs:
    return ServerLogs(id=server_id, lines=list(manager.logs(_ws(request), server_id, tail=tail)))


@router.delete("/{server_id}", status_code=204)
def stop_server(server_id: str, request: Request) -> Response:
    manager.stop(_ws(request), server_id)
    return Response(status_code=204)
