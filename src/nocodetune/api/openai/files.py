"""`/v1/files`: upload a JSONL file for fine-tuning (it becomes a dataset version), list,
retrieve, download and delete it by its file id."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from nocodetune.api.files_routes import receive_upload
from nocodetune.api.openai.errors import V1_ERRORS, OpenAIError, OpenAIRoute
from nocodetune.api.openai.models import FileDeleted, FileList, FileObject
from nocodetune.api.openai.state import OpenAIState, openai_state
from nocodetune.jobs.openai_jobs import page

router = APIRouter(route_class=OpenAIRoute, responses=V1_ERRORS)


@router.post("/files", response_model=FileObject)
async def create_file(request: Request, state: OpenAIState = Depends(openai_state)) -> FileObject:
    """Multipart `file` (.jsonl) + `purpose` (`fine-tune`); checked line by line before it is kept."""
    receiver = await receive_upload(
        request, state.files.store, lambda message: OpenAIError(400, message, param="file", code="invalid_request"),
        "the file as multipart/form-data with fields 'file' and 'purpose'",
    )
    try:
        record = await run_in_threadpool(state.files.upload, receiver.file(), receiver.fields.get("purpose"))
    finally:
        if receiver.staged is not None:
            receiver.staged.discard()  # no-op once the version is in place
    return FileObject.of(record)


@router.get("/files", response_model=FileList)
def list_files(
    purpose: str | None = None,
    order: Literal["asc", "desc"] = "desc",
    after: str | None = None,
    limit: int = Query(10000, ge=1, le=10000),
    state: OpenAIState = Depends(openai_state),
) -> FileList:
    records, more = page(state.files.list(purpose=purpose, order=order), lambda r: r.id, after, limit)
    data = [FileObject.of(r) for r in records]
    return FileList(data=data, has_more=more, first_id=data[0].id if data else None, last_id=data[-1].id if data else None)


@router.get("/files/{file_id}", response_model=FileObject)
def retrieve_file(file_id: str, state: OpenAIState = Depends(openai_state)) -> FileObject:
    return FileObject.of(state.files.get(file_id))


@router.get("/files/{file_id}/content", response_class=FileResponse)
def file_content(file_id: str, state: OpenAIState = Depends(openai_state)) -> FileResponse:
    record, path = state.files.content(file_id)
    return FileResponse(path, filename=record.filename, media_type="application/jsonl")


@router.delete("/files/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, state: OpenAIState = Depends(openai_state)) -> FileDeleted:
    return FileDeleted(id=state.files.delete(file_id).id)
