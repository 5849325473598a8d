"""REST: the Files routes (the seed's data load server) — upload, list, preview, download, delete.

An upload is parsed as it arrives: the `file` part goes chunk by chunk into the
workspace's staging area (hashed and size-checked on the way), so a large upload never
sits in memory and a refused one leaves nothing behind. The client's file name is only
metadata and the source of the extension; it never becomes a path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from nocodetune.api.errors import API_ERRORS, error_responses
from nocodetune.data.models import DatasetInfo, DatasetVersionMeta, PreviewPage
from nocodetune.data.report import FormatReport
from nocodetune.data.staging import StagedFile, TooLargeError
from nocodetune.data.store import MAX_PREVIEW_ROWS, DatasetStore
from nocodetune.errors import DataError, UnsafeNameError
from nocodetune.settings import Settings
from nocodetune.workspace import check_name, resolve_within

router = APIRouter(responses=API_ERRORS)
CONFLICT = error_responses(409)

UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "name"],
                "properties": {
                    "file": {"type": "string", "format": "binary", "description": "The dataset file (CSV, TSV, JSON, JSONL, Parquet, Excel, text, Markdown, HTML, PDF, DOCX)."},
                    "name": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$", "description": "Dataset name; the file becomes its next version."},
                    "tags": {"type": "string", "description": "Comma-separated tags."},
                    "split": {"type": "string", "enum": ["paragraph", "document"], "default": "paragraph", "description": "Documents: one example per paragraph or per document."},
                },
            },
            "encoding": {"file": {"contentType": "application/octet-stream"}},
        }
    },
}

MAX_FIELD_BYTES = 64 * 1024  # text form fields (name, tags, split)
MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the file
_MEDIA_TYPES = {
    "csv": "text/csv",
    "tsv": "text/tab-separated-values",
    "json": "application/json",
    "jsonl": "application/jsonl",
    "parquet": "application/vnd.apache.parquet",
    "excel": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "txt": "text/plain",
    "md": "text/markdown",
    "html": "text/html",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


class UploadedVersion(DatasetVersionMeta):
    created: bool = Field(description="False when these bytes were already stored (the existing version is returned).")
    report: list[FormatReport] = Field(
        default_factory=list, description="Each training format the columns fit: rows usable, rows refused and why (empty: no format fits)."
    )


class Deleted(BaseModel):
    deleted: list[str] = Field(description="name@version of every version removed.")


def _store(request: Request) -> DatasetStore:
    return DatasetStore(request.app.state.workspace)


def _data_file(request: Request, store: DatasetStore, name: str, version: int) -> Path:
    """The stored file of a version, refused if it (or a link on the way) leaves the workspace's files/."""
    return resolve_within(request.app.state.workspace.files, store.path(name, version), "the workspace's files folder")


class _MultipartUpload:
    """Callbacks for python-multipart: small text fields kept in memory, the `file` part streamed to disk."""

    def __init__(self, store: DatasetStore, max_bytes: int) -> None:
        self.store = store
        self.max_bytes = max_bytes
        self.fields: dict[str, str] = {}
        self.staged: StagedFile | None = None
        self.ended = False
        self._headers: dict[bytes, bytes] = {}
        self._header_field = b""
        self._header_value = b""
        self._part: str | None = None  # name of the form field being read
        self._buffer = bytearray()
        self._file_done = False

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": lambda d, s, e: self._add("_header_field", d[s:e]),
            "on_header_value": lambda d, s, e: self._add("_header_value", d[s:e]),
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
            "on_end": self._end,
        }

    def _add(self, attr: str, data: bytes) -> None:
        value = getattr(self, attr) + data
        if len(value) > 8192:
            raise DataError("a multipart header is too long", field="file")
        setattr(self, attr, value)

    def _part_begin(self) -> None:
        self._headers, self._part, self._buffer = {}, None, bytearray()

    def _header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field, self._header_value = b"", b""

    def _headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self._headers.get(b"content-disposition", b"").decode("latin-1"))
        self._part = _decode(options.get(b"name", b""), "form field name")
        filename = options.get(b"filename")
        if filename is None:
            return
        if self._part != "file" or self.staged is not None:
            raise DataError(f"unexpected file in form field {self._part!r}: send one file, in the field 'file'", field=self._part)
        self.staged = self.store.stage(_decode(filename, "filename"), max_bytes=self.max_bytes)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file" and self.staged is not None:
            self.staged.write(data[start:end])
            return
        self._buffer += data[start:end]
        if len(self._buffer) > MAX_FIELD_BYTES:
            raise DataError(f"form field {self._part!r} is longer than {MAX_FIELD_BYTES} bytes", field=self._part)

    def _part_end(self) -> None:
        if self._part == "file" and self.staged is not None:
            self._file_done = True
        elif self._part:
            self.fields[self._part] = _decode(bytes(self._buffer), self._part)
            if self._part == "name" and self.fields["name"]:
                check_name(self.fields["name"], "dataset name")  # refuse before the file is streamed, when it comes first

    def _end(self) -> None:
        self.ended = True

    def file(self) -> StagedFile:
        if self.staged is None:
            raise DataError("no file in the upload: send it as multipart form field 'file'", field="file")
        if not (self.ended and self._file_done):
            raise DataError("the upload ended before the file did (connection cut?)", field="file")
        return self.staged


async def receive_upload(request: Request, store: DatasetStore, bad_request: Callable[[str], Exception], expected: str) -> _MultipartUpload:
    """Stream a multipart body into the store's staging area: size limit, safe names, the file part on disk.

    Shared by `POST /api/files` and `/v1/files`; `bad_request` builds each face's own error for a
    body that is not the multipart form `expected` describes. A failed receive leaves nothing staged.
    """
    from python_multipart import MultipartParser
    from python_multipart.exceptions import MultipartParseError
    from python_multipart.multipart import parse_options_header

    limit_mb = Settings().max_upload_mb
    max_bytes = limit_mb * 1024 * 1024
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not options.get(b"boundary"):
        raise bad_request(f"send {expected}")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > max_bytes + MULTIPART_OVERHEAD:
        raise TooLargeError(f"the upload is larger than the limit of {limit_mb} MiB", field="file", hint="raise NOCODETUNE_MAX_UPLOAD_MB")
    receiver = _MultipartUpload(store, max_bytes)
    parser = MultipartParser(options[b"boundary"], receiver.callbacks())  # type: ignore[arg-type]
    try:
        try:
            async for chunk in request.stream():
                parser.write(chunk)
        except MultipartParseError as exc:
            raise bad_request(f"the multipart body is malformed: {exc}") from None
        parser.finalize()
        receiver.file()  # the file part arrived whole
    except BaseException:
        if receiver.staged is not None:
            receiver.staged.discard()
        raise
    return receiver


def _decode(raw: bytes, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafeNameError(f"{what} is not valid UTF-8", field=what) from None


@router.post(
    "", status_code=201, response_model=UploadedVersion, openapi_extra={"requestBody": UPLOAD_BODY},
    responses={200: {"model": UploadedVersion, "description": "Same bytes as an existing version"}, **error_responses(413)},
)  # fmt: skip
async def upload(request: Request, response: Response) -> UploadedVersion:
    """Add the uploaded file as the next version of dataset `name` (form fields: file, name, tags, split, encoding)."""
    store = _store(request)
    receiver = await receive_upload(
        request, store, lambda message: DataError(message, field="file"), "the dataset as multipart/form-data with a 'file' field and a 'name' field"
    )
    try:
        staged = receiver.file()
        name = receiver.fields.get("name")
        if not name:
            raise DataError("form field 'name' (the dataset name) is required", field="name")
        tags = [t for t in receiver.fields.get("tags", "").split(",") if t.strip()]
        split = receiver.fields.get("split") or "paragraph"
        if split not in ("paragraph", "document"):
            raise DataError(f"split must be 'paragraph' or 'document', got {split!r}", field="split")
        encoding = receiver.fields.get("encoding") or None
        result = await run_in_threadpool(store.add_staged, staged, name, tags, split, encoding)  # type: ignore[arg-type]
    finally:
        if receiver.staged is not None:
            receiver.staged.discard()  # no-op once the version is in place
    if not result.created:
        response.status_code = 200
    return UploadedVersion(**result.meta.model_dump(), created=result.created, report=result.report)


@router.get("", response_model=list[DatasetInfo])
def list_datasets(request: Request) -> list[DatasetInfo]:
    return _store(request).list()


@router.get("/{name}", response_model=DatasetInfo)
def get_dataset(request: Request, name: str) -> DatasetInfo:
    return _store(request).get(name)


@router.get("/{name}/versions/{version}", response_model=DatasetVersionMeta)
def get_version(request: Request, name: str, version: int) -> DatasetVersionMeta:
    return _store(request).version(name, version)


@router.get("/{name}/versions/{version}/preview", response_model=PreviewPage)
def preview_version(
    request: Request, name: str, version: int, offset: int = Query(0, ge=0, le=2**31 - 1), limit: int = Query(20, ge=0, le=MAX_PREVIEW_ROWS)
) -> PreviewPage:
    store = _store(request)
    _data_file(request, store, name, version)  # a planted link is refused before it is read
    return store.preview(name, version, offset, limit)


@router.get("/{name}/versions/{version}/download", response_class=FileResponse, responses={200: {"content": {"application/octet-stream": {}}, "description": "The stored file, with its own media type"}})
def download_version(request: Request, name: str, version: int) -> FileResponse:
    store = _store(request)
    meta = store.version(name, version)
    return FileResponse(_data_file(request, store, name, version), filename=meta.file, media_type=_MEDIA_TYPES.get(meta.format, "application/octet-stream"))


@router.delete("/{name}/versions/{version}", response_model=Deleted, responses=CONFLICT)
def delete_version(request: Request, name: str, version: int, force: bool = False) -> Deleted:
    return Deleted(deleted=[_store(request).delete_version(name, version, force=force).ref])


@router.delete("/{name}", response_model=Deleted, responses=CONFLICT)
def delete_dataset(request: Request, name: str, force: bool = False) -> Deleted:
    return Deleted(deleted=[m.ref for m in _store(request).delete(name, force=force)])
