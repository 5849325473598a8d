"""`--set a.b=c` parsing, dotted keys ↔ nested dicts, and readable config errors.

Users type settings on a command line or in a form, so values arrive as text and keys
arrive dotted. This module is the one place that turns them into the nested dict the
schema takes, and that turns pydantic's errors into a `ConfigError` naming the full key
path, the offending value and, for a typo, the closest valid key.
"""

from __future__ import annotations

import difflib
import re
from typing import Any, Iterable, Mapping

import yaml
from pydantic import BaseModel, ValidationError

from nocodetune.records.schema import JOB_META_KEYS, JobConfig
from nocodetune.errors import ConfigError

_NUMBER_RE = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


# -- values -------------------------------------------------------------------------


def parse_value(text: str) -> Any:
    """Parse one `--set` value the way YAML would, plus numbers YAML 1.1 misses (2e-4).

    'true' → True, '[a, b]' → ['a', 'b'], '16' → 16, '2e-4' → 0.0002, 'null' → None;
    anything that is not valid YAML stays the plain string the user typed.
    """
    stripped = text.strip()
    if _NUMBER_RE.match(stripped):
        number = float(stripped)
        if re.match(r"^[-+]?\d+$", stripped):
            return int(stripped)
        return number
    try:
        value = yaml.safe_load(stripped) if stripped else ""
    except yaml.YAMLError:
        return text
    return value


def parse_set_args(items: Iterable[str]) -> dict[str, Any]:
    """`["training.learning_rate=2e-4", ...]` → `{"training.learning_rate": 0.0002, ...}`."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(
                f"--set {item!r} is not of the form key=value",
                field=key or None,
                hint="for example --set training.learning_rate=2e-4 --set lora.r=8",
            )
        try:
            out[key] = parse_value(raw)
        except (ValueError, RecursionError) as exc:  # 5000-digit integers, YAML nested past the stack
            reason = "is nested too deeply" if isinstance(exc, RecursionError) else f"cannot be read: {str(exc).split(';')[0]}"
            raise ConfigError(f"--set {key}: the value {reason}", field=key) from None
    return out


# -- keys ---------------------------------------------------------------------------


def dotted_to_nested(flat: Mapping[str, Any]) -> dict[str, Any]:
    """`{"a.b": 1, "a.c": 2}` → `{"a": {"b": 1, "c": 2}}`; refuses a key that is both a value and a section."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        if not _KEY_RE.match(key):
            raise ConfigError(f"invalid setting name {key!r}: use dotted names like training.learning_rate", field=key)
        parts = key.split(".")
        node = nested
        for i, part in enumerate(parts[:-1]):
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts[: i + 1])} is a value, so {key} cannot be set under it", field=key)
            node = child
        if isinstance(node.get(parts[-1]), dict) and not isinstance(value, dict):
            raise ConfigError(f"{key} is a section; set one of its keys instead ({key}.<name>=...)", field=key)
        node[parts[-1]] = value
    return nested


def flatten(nested: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"a": {"b": 1}}` → `{"a.b": 1}`. Lists and scalars are leaves."""
    flat: dict[str, Any] = {}
    for key, value in nested.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Dicts merge key by key, anything else (lists included) is replaced by the override."""
    merged: dict[str, Any] = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


# -- errors -------------------------------------------------------------------------


def _model_at(path: list[str]) -> type[BaseModel] | None:
    """The pydantic model of the section at `path` inside JobConfig (None if it is a leaf)."""
    model: type[BaseModel] = JobConfig
    for part in path:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None) if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _real_path(loc: tuple[Any, ...]) -> list[str]:
    """The config key path of an error; drops pydantic's union-member tags like 'bool'."""
    path: list[str] = []
    model: type[BaseModel] | None = JobConfig
    for part in loc:
        if model is None or not isinstance(part, str):
            break
        path.append(part)
        if part not in model.model_fields:
            break  # an unknown key: keep it, nothing lies below
        model = _model_at(path)
    return path


def suggest_key(path: list[str], extra_valid: Iterable[str] = ()) -> str | None:
    """The closest valid key to the last part of `path`, within its section."""
    parent = _model_at(path[:-1])
    if parent is None:
        return None
    valid = list(parent.model_fields) + (list(extra_valid) if len(path) == 1 else [])
    close = difflib.get_close_matches(path[-1], valid, n=1, cutoff=0.6)
    return close[0] if close else None


def _describe(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def config_error(exc: ValidationError, *, where: str | None = None) -> ConfigError:
    """One `ConfigError` for all problems of a JobConfig ValidationError, each with its key path.

    `field` names the first problem; the message lists them all so a user fixes everything
    in one go. `where` (a file or 'job.yaml') prefixes the message when given.
    """
    problems: dict[str, list[str]] = {}
    hints: list[str] = []
    values: dict[str, Any] = {}
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        path = _real_path(loc)
        key = ".".join(path) or "(config)"
        if err.get("type") == "extra_forbidden":
            parent = _model_at(path[:-1])
            section = ".".join(path[:-1])
            guess = suggest_key(path, JOB_META_KEYS)
            text = f"unknown key {key}" if section else f"unknown section or key {key}"
            if guess:
                text += f" (did you mean {'.'.join([*path[:-1], guess])}?)"
            elif parent is not None:
                hints.append(f"valid keys{' in ' + section if section else ''}: {', '.join(parent.model_fields)}")
            problems.setdefault(key, []).append(text)
            continue
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        if key not in values and "input" in err and path:
            values[key] = err["input"]
        problems.setdefault(key, []).append(msg)

    lines = []
    for key, msgs in problems.items():
        if msgs and msgs[0].startswith("unknown "):
            lines.append(msgs[0])
        elif key in values:
            lines.append(f"{key} = {_describe(values[key])}: {' or '.join(_dedupe(msgs))}")
        else:
            lines.append(f"{key}: {' or '.join(_dedupe(msgs))}" if key != "(config)" else " or ".join(_dedupe(msgs)))
    first = next(iter(problems), None)
    message = "; ".join(lines) if lines else "invalid job config"
    if where:
        message = f"{where}: {message}"
    return ConfigError(
        message,
        field=first if first and first != "(config)" else None,
        hint="; ".join(hints) or None,
    )


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def validate_config(data: Mapping[str, Any], *, where: str | None = None) -> JobConfig:
    """Build a JobConfig from a nested dict, or raise a ConfigError naming each bad key."""
    try:
        return JobConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise config_error(exc, where=where) from None
