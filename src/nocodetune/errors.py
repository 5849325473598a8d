"""One error type for everything a user can get wrong.

Every face (CLI, REST, UI) renders a `NocodetuneError` the same way: a message plus the
field, file or row it concerns and a hint. Anything else escaping is a bug.
"""

from __future__ import annotations

from typing import Any


class NocodetuneError(Exception):
    """A problem caused by input or environment, never by a bug in NoCodeTune."""

    status_code = 400  # what the REST API answers with

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        file: str | None = None,
        row: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.file = file
        self.row = row
        self.hint = hint

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": type(self).__name__, "message": self.message}
        for key in ("field", "file", "row", "hint"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out

    def __str__(self) -> str:
        where = []
        if self.file is not None:
            where.append(f"file {self.file}")
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.field is not None:
            where.append(f"field {self.field}")
        text = self.message
        if where and not any(w in self.message for w in where):
            text = f"{text} ({', '.join(where)})"
        if self.hint:
            text = f"{text}\nHint: {self.hint}"
        return text


class ConfigError(NocodetuneError):
    """A job config value or key is wrong."""

    status_code = 422


class DataError(NocodetuneError):
    """A dataset file cannot be read or does not fit the job."""

    status_code = 422


class NotFoundError(NocodetuneError):
    """A named dataset, version, job, base, server or model does not exist."""

    status_code = 404


class ConflictError(NocodetuneError):
    """The action clashes with current state (duplicate name, job running, in use)."""

    status_code = 409


class UnsafeNameError(NocodetuneError):
    """A name or path would leave the workspace."""

    status_code = 400


class ModelNotFoundError(NotFoundError):
    """A model is not available locally (NoCodeTune never downloads at run time)."""
