"""Atomic writes and checked reads, shared by every record module.

A record is written to a temporary file beside its target, fsynced and renamed over it,
so a reader (or a crash) never sees half a record. A read that fails names the file and
says what is wrong, so no face has to turn a raw JSON or pydantic error into a message.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from nocodetune.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per process and thread: two threads of one process (a run's follower and a cancel) may write the same record
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def write_model(path: Path, model: BaseModel) -> None:
    write_text_atomic(path, model.model_dump_json(indent=2) + "\n")


def _short(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()))
    return f"{where}: {first.get('msg', '')}" if where else str(first.get("msg", ""))


def read_json(path: Path, display: str | None = None) -> Any:
    """Parsed JSON, or a ConfigError naming the file (missing, unreadable, not JSON)."""
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name} is missing", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name} cannot be read: {exc}", file=name) from None
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ConfigError(f"{name} is not valid JSON ({exc}); it may have been edited by hand or cut short", file=name) from None


def read_yaml(path: Path, display: str | None = None) -> Any:
    name = display or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{name} is missing", file=name) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name} cannot be read: {exc}", file=name) from None
    try:
        return yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError) as exc:
        raise ConfigError(f"{name} is not valid YAML: {exc}", file=name) from None


def read_model(path: Path, model: type[M], display: str | None = None) -> M:
    """`model` validated from the JSON file at `path`; errors name the file and the key."""
    name = display or str(path)
    data = read_json(path, name)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{name} is not a valid {model.__name__} record: {_short(exc)}", file=name) from None
