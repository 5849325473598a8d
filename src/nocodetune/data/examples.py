"""Dataset rows → training examples: the one path for `data add`'s report, validate,
training and the UI's preview.

Column detection (which column plays which role), format detection, message parsing
(OpenAI `{role, content}` and ShareGPT `{from, value}` with their role names) and the
refusal of unusable rows all happen here, once. Three example shapes come out:

- `{"text": str}` (format text): language modelling on the whole text;
- `{"messages": [...]}` (prompt_completion, alpaca, messages): a conversation ending with
  an assistant turn; every assistant turn is trained (`data.tokens` builds the mask);
- `{"prompt": [...], "chosen": [...], "rejected": [...]}` (preference): TRL's
  conversational preference shape, for DPO and ORPO.

A row that cannot become an example is refused with a message naming the row; the same
message reaches the user from validate, from `data add`'s report and from a training
run, because all three call `build_examples`.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from nocodetune.errors import DataError
from nocodetune.records.schema import ColumnMapping, DatasetSection

Example = dict[str, Any]
Message = dict[str, str]

# Roles each format needs (required) and may use (optional).
FORMAT_ROLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "preference": (("prompt", "chosen", "rejected"), ()),
    "messages": (("messages",), ()),
    "alpaca": (("instruction", "output"), ("input",)),
    "prompt_completion": (("prompt", "completion"), ()),
    "text": (("text",), ()),
}
# Column names recognised for each role (case-insensitive), best first.
ROLE_ALIASES: dict[str, tuple[str, ...]] = {
    "messages": ("messages", "conversations", "conversation", "chat", "dialog", "dialogue"),
    "instruction": ("instruction", "instructions"),
    "input": ("input", "context"),
    "output": ("output",),
    "prompt": ("prompt", "question", "query", "input"),  # OpenAI's DPO JSONL: input.messages
    "completion": ("completion", "response", "answer", "output"),
    "chosen": ("chosen", "preferred", "chosen_response", "preferred_output"),
    "rejected": ("rejected", "dispreferred", "rejected_response", "non_preferred_output"),
    "text": ("text", "content", "document"),
}
AUTO_ORDER = ("preference", "messages", "alpaca", "prompt_completion", "text")
# Speaker names other tools use, mapped to the three roles chat templates know.
SPEAKER_ALIASES: dict[str, str] = {
    "system": "system",
    "user": "user",
    "human": "user",
    "assistant": "assistant",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bot": "assistant",
    "model": "assistant",
    "ai": "assistant",
}
MAX_LISTED_ROWS = 10  # row numbers named in one message


class RowProblem(BaseModel):
    """A row that cannot become an example, and why (the message names the column)."""

    row: int = Field(description="1-based data row number.")
    message: str
    field: str


class ExampleSet(BaseModel):
    """What a dataset's rows become: the examples, their row numbers, and the refused rows."""

    format: str
    columns: dict[str, str] = Field(description="role → column")
    examples: list[Example] = Field(default_factory=list)
    rows: list[int] = Field(default_factory=list, description="Row number of each example.")
    refused: list[RowProblem] = Field(default_factory=list)
    total_rows: int = 0

    def refusal_summary(self) -> str:
        """One message for all refused rows, grouped by reason (the same text in validate and training)."""
        groups: dict[str, list[int]] = {}
        for problem in self.refused:
            groups.setdefault(problem.message, []).append(problem.row)
        parts = [f"{message}: rows {row_list(rows)}" for message, rows in groups.items()]
        return f"{len(self.refused)} of {self.total_rows} rows cannot be trained on. " + "; ".join(parts)

    def raise_if_refused(self, file: str) -> None:
        if self.refused:
            first = self.refused[0]
            raise DataError(self.refusal_summary(), file=file, row=first.row, field=first.field, hint="fix or remove those rows and add the file again as a new version")


def row_list(numbers: Sequence[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:MAX_LISTED_ROWS])
    return shown + (f" (and {len(numbers) - MAX_LISTED_ROWS} more)" if len(numbers) > MAX_LISTED_ROWS else "")


# -- which column plays which role ----------------------------------------------------


def _mapping_dict(mapping: ColumnMapping | Mapping[str, Any] | None) -> dict[str, str]:
    if mapping is None:
        return {}
    raw = mapping.model_dump() if isinstance(mapping, ColumnMapping) else dict(mapping)
    return {role: col for role, col in raw.items() if col}


def detect_format(columns: Sequence[str], mapping: ColumnMapping | Mapping[str, Any] | None = None, fmt: str = "auto") -> tuple[str, dict[str, str]]:
    """(format, {role: column}) for a dataset's columns.

    Columns named in `mapping` win; the rest are found by name (ROLE_ALIASES). With
    fmt='auto' the format is the one the explicit mapping points at, else the first of
    preference → messages → alpaca → prompt_completion → text whose required roles are
    all present. Raises DataError naming the `dataset.columns.<role>` that is missing.
    """
    explicit = _mapping_dict(mapping)
    available = list(columns)
    for role, col in explicit.items():
        if col not in available:
            raise DataError(
                f"dataset.columns.{role} names column {col!r}, which the dataset does not have",
                field=f"dataset.columns.{role}",
                hint=f"columns in the dataset: {', '.join(available) or 'none'}",
            )
    by_lower = {c.lower(): c for c in reversed(available)}

    def find(role: str, taken: set[str]) -> str | None:
        if role in explicit:
            return explicit[role]
        for alias in ROLE_ALIASES[role]:
            col = by_lower.get(alias)
            if col is not None and col not in taken:
                return col
        return None

    def fill(name: str) -> tuple[dict[str, str], list[str]]:
        required, optional = FORMAT_ROLES[name]
        found: dict[str, str] = {}
        missing: list[str] = []
        for role in (*required, *optional):
            col = find(role, set(found.values()))
            if col is not None:
                found[role] = col
            elif role in required:
                missing.append(role)
        return found, missing

    if fmt == "auto":
        pointed = [name for name in AUTO_ORDER if any(r in explicit for r in (*FORMAT_ROLES[name][0], *FORMAT_ROLES[name][1]))]
        for name in pointed or AUTO_ORDER:
            found, missing = fill(name)
            if not missing:
                return name, found
        expect = "; ".join(f"{name}: {' + '.join(FORMAT_ROLES[name][0])}" for name in AUTO_ORDER)
        raise DataError(
            f"cannot tell how to train on columns {', '.join(available) or '(none)'}",
            field="dataset.columns",
            hint=f"say which column holds what with dataset.columns (prompt and completion, or text, instruction/output, messages, chosen/rejected); recognised layouts are {expect}",
        )
    if fmt not in FORMAT_ROLES:
        raise DataError(f"unknown dataset.format {fmt!r}", field="dataset.format", hint=f"one of: auto, {', '.join(FORMAT_ROLES)}")
    found, missing = fill(fmt)
    if missing:
        role = missing[0]
        raise DataError(
            f"dataset.format is {fmt} but no column was found for {', '.join(missing)}",
            field=f"dataset.columns.{role}",
            hint=f"set dataset.columns.{role} to one of: {', '.join(available) or 'none'}",
        )
    return fmt, found


def usable_formats(columns: Sequence[str]) -> list[str]:
    """Every format whose required columns are found by name (for `data add`'s report)."""
    out = []
    for name in AUTO_ORDER:
        try:
            detect_format(columns, None, name)
        except DataError:
            continue
        out.append(name)
    return out


# -- one row → one example -------------------------------------------------------------


class _Refused(Exception):
    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.message, self.field = message, field


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text(value: Any, role: str, column: str) -> str:
    if _is_blank(value):
        raise _Refused(f"empty {column!r}", f"dataset.columns.{role}")
    if isinstance(value, (dict, list)):
        raise _Refused(f"{column!r} holds a {type(value).__name__}, not text", f"dataset.columns.{role}")
    return str(value)


def parse_messages(value: Any, role: str, column: str) -> list[Message]:
    """A cell holding a conversation: a list (or JSON text of a list) of {role, content} or {from, value}."""
    field = f"dataset.columns.{role}"
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise _Refused(f"{column!r} is not a JSON list of messages", field) from None
    if hasattr(value, "tolist"):
        value = value.tolist()  # numpy arrays from parquet
    if not isinstance(value, list) or not value:
        raise _Refused(f"{column!r} must be a non-empty list of messages", field)
    out: list[Message] = []
    for m in value:
        if not isinstance(m, dict):
            raise _Refused(f"{column!r} holds a message that is not an object with role and content", field)
        speaker = m.get("role", m.get("from"))
        content = m.get("content", m.get("value"))
        mapped = SPEAKER_ALIASES.get(str(speaker).strip().lower()) if speaker is not None else None
        if mapped is None:
            known = ", ".join(sorted(SPEAKER_ALIASES))
            raise _Refused(f"{column!r} has a message with role {speaker!r} (known roles: {known})", field)
        if isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type", "text") == "text")
        if _is_blank(content):
            raise _Refused(f"{column!r} has an empty {mapped} message", field)
        out.append({"role": mapped, "content": str(content)})
    return out


def _conversation(messages: list[Message], column: str, role: str) -> list[Message]:
    field = f"dataset.columns.{role}"
    if any(m["role"] == "system" for m in messages[1:]):
        raise _Refused(f"{column!r} has a system message after the first message", field)
    first = next((m["role"] for m in messages if m["role"] != "system"), None)
    if first != "user":
        raise _Refused(f"{column!r} must start with a user message (after an optional system message)", field)
    if messages[-1]["role"] != "assistant":
        raise _Refused(f"{column!r} does not end with an assistant message (the answer the model learns)", field)
    return messages


def _with_system(messages: list[Message], system_prompt: str | None) -> list[Message]:
    if system_prompt and messages[0]["role"] != "system":
        return [{"role": "system", "content": system_prompt}, *messages]
    return messages


def _maybe_list(value: Any) -> Any:
    """A cell that may hold a message list: numpy arrays become lists, JSON list text is parsed."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value  # text that happens to start with "["
        return parsed if isinstance(parsed, list) else value
    return value


def _answer(value: Any, role: str, column: str) -> list[Message]:
    """A preference answer: text, or a message list ending with the assistant's reply."""
    value = _maybe_list(value)
    if isinstance(value, list):
        messages = parse_messages(value, role, column)
        if messages[-1]["role"] != "assistant":
            raise _Refused(f"{column!r} does not end with an assistant message", f"dataset.columns.{role}")
        return [messages[-1]]
    return [{"role": "assistant", "content": _text(value, role, column)}]


def _prompt_messages(value: Any, column: str, system_prompt: str | None) -> list[Message]:
    """A preference prompt: text, or a message list (OpenAI's DPO format nests it as `input.messages`)."""
    if isinstance(value, dict) and "messages" in value:
        value = value["messages"]
    value = _maybe_list(value)
    if isinstance(value, list):
        messages = parse_messages(value, "prompt", column)
    else:
        messages = [{"role": "user", "content": _text(value, "prompt", column)}]
    if messages[-1]["role"] == "assistant":
        raise _Refused(f"{column!r} ends with an assistant message; a prompt ends with the user's turn", "dataset.columns.prompt")
    return _with_system(messages, system_prompt)


def row_to_example(row: Mapping[str, Any], fmt: str, cols: Mapping[str, str], system_prompt: str | None) -> Example:
    """One dataset row as an example; raises _Refused (use `build_examples`)."""
    if fmt == "text":
        return {"text": _text(row.get(cols["text"]), "text", cols["text"])}
    if fmt == "messages":
        messages = parse_messages(row.get(cols["messages"]), "messages", cols["messages"])
        return {"messages": _conversation(_with_system(messages, system_prompt), cols["messages"], "messages")}
    if fmt == "preference":
        prompt = _prompt_messages(row.get(cols["prompt"]), cols["prompt"], system_prompt)
        chosen = _answer(row.get(cols["chosen"]), "chosen", cols["chosen"])
        rejected = _answer(row.get(cols["rejected"]), "rejected", cols["rejected"])
        if chosen[0]["content"].strip() == rejected[0]["content"].strip():
            raise _Refused(f"{cols['chosen']!r} and {cols['rejected']!r} are the same answer, so there is no preference to learn", "dataset.columns.rejected")
        return {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if fmt == "alpaca":
        user = _text(row.get(cols["instruction"]), "instruction", cols["instruction"])
        extra = row.get(cols["input"]) if "input" in cols else None
        if not _is_blank(extra):
            user = f"{user}\n\n{extra}"
        answer = _text(row.get(cols["output"]), "output", cols["output"])
    else:
        user = _text(row.get(cols["prompt"]), "prompt", cols["prompt"])
        answer = _text(row.get(cols["completion"]), "completion", cols["completion"])
    return {"messages": _with_system([{"role": "user", "content": user}, {"role": "assistant", "content": answer}], system_prompt)}


def build_examples(rows: Sequence[Mapping[str, Any]], section: DatasetSection, columns: Sequence[str] | None = None) -> ExampleSet:
    """Every row mapped; refused rows are collected, not raised (callers decide: validate reports, training refuses).

    Raises DataError only when the columns themselves do not fit (no rows, no matching columns).
    """
    if section.max_rows:
        rows = rows[: section.max_rows]
    if not rows:
        raise DataError("the dataset has no rows", field="dataset.ref")
    names = list(columns) if columns is not None else list(dict.fromkeys(k for r in rows[:100] for k in r))
    fmt, cols = detect_format(names, section.columns, section.format)
    out = ExampleSet(format=fmt, columns=cols, total_rows=len(rows))
    for number, row in enumerate(rows, start=1):
        try:
            out.examples.append(row_to_example(row, fmt, cols, section.system_prompt))
            out.rows.append(number)
        except _Refused as problem:
            out.refused.append(RowProblem(row=number, message=problem.message, field=problem.field))
    return out


# -- splitting and reading back -----------------------------------------------------------


def split_examples(examples: list[Example], eval_split: float, seed: int) -> tuple[list[int], list[int]]:
    """Indices of the (train, eval) examples: a fixed-seed split, at least one each side when asked for."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = 0
    if eval_split > 0 and len(examples) >= 2:
        n_eval = min(len(examples) - 1, max(1, round(len(examples) * eval_split)))
    held = set(order[:n_eval])
    return [i for i in range(len(examples)) if i not in held], [i for i in range(len(examples)) if i in held]


def prompt_and_answer(example: Example) -> tuple[list[Message], str] | None:
    """The question to ask a model and the answer the data expects (None for plain text)."""
    if "messages" in example:
        return example["messages"][:-1], example["messages"][-1]["content"]
    if "chosen" in example:
        return example["prompt"], example["chosen"][-1]["content"]
    return None


def read_examples(data_file: Path, section: DatasetSection) -> ExampleSet:
    """The examples of a stored dataset version or a job's snapshot (its meta.json lies beside it).

    Validate (before and after the job exists) and training both come here, so they read
    the same rows with the same reader and map them with the same rules.
    """
    from nocodetune.data.readers import read_snapshot

    table = read_snapshot(data_file)
    try:
        return build_examples(table.rows, section, table.columns)
    except DataError as exc:
        exc.file = exc.file or f"{data_file.parent.name}/{data_file.name}"
        raise
