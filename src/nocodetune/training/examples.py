"""Dataset rows → training examples, in the two shapes TRL's SFTTrainer understands.

Every supported format becomes either a language-modeling example `{"text": str}` or a
conversational prompt/completion example `{"prompt": [messages], "completion": [message]}`.
Prompt/completion is what lets the loss cover only the answer: the prompt is masked.
Chat-style data keeps every turn but the last assistant reply in the prompt, so the model
learns the final answer in the context of the whole conversation.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from nocodetune.records.schema import DatasetSection
from nocodetune.errors import DataError

Example = dict[str, Any]

def resolve_columns(section: DatasetSection, columns: list[str], file: str) -> tuple[str, dict[str, str]]:
    """The format and role→column mapping; the same detection `job validate` uses, so both agree."""
    from nocodetune.config.validate import detect_format

    try:
        return detect_format(columns, section.columns, section.format)
    except DataError as exc:
        exc.file = exc.file or file
        raise


def _text(value: Any, role: str, row: int, file: str) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        raise DataError(f"empty {role} value", row=row, file=file, field=f"dataset.columns.{role}", hint="remove or fill empty rows")
    return str(value)


def _messages(value: Any, row: int, file: str) -> list[dict[str, str]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise DataError(f"messages are not valid JSON: {exc}", row=row, file=file, field="dataset.columns.messages") from exc
    if hasattr(value, "tolist"):
        value = value.tolist()  # numpy arrays from parquet
    if not isinstance(value, list) or not value:
        raise DataError("messages must be a non-empty list of {role, content}", row=row, file=file, field="dataset.columns.messages")
    out = []
    for m in value:
        role = m.get("role", m.get("from")) if isinstance(m, dict) else None
        content = m.get("content", m.get("value")) if isinstance(m, dict) else None
        role = {"human": "user", "gpt": "assistant"}.get(role, role)
        if role not in ("system", "user", "assistant") or content is None:
            raise DataError(f"bad message {m!r}: need role system|user|assistant and content", row=row, file=file, field="dataset.columns.messages")
        out.append({"role": role, "content": str(content)})
    return out


def row_to_example(row: dict[str, Any], fmt: str, cols: dict[str, str], system_prompt: str | None, row_no: int, file: str) -> Example:
    """One dataset row as a TRL example; raises DataError naming the row."""
    system = [{"role": "system", "content": system_prompt}] if system_prompt else []
    if fmt == "text":
        return {"text": _text(row[cols["text"]], "text", row_no, file)}
    if fmt == "messages":
        msgs = _messages(row[cols["messages"]], row_no, file)
        if msgs[-1]["role"] != "assistant":
            raise DataError("the last message must be the assistant's (it is what the model learns)", row=row_no, file=file, field="dataset.columns.messages")
        if system and msgs[0]["role"] != "system":
            msgs = system + msgs
        return {"prompt": msgs[:-1], "completion": msgs[-1:]}
    if fmt == "alpaca":
        user = _text(row[cols["instruction"]], "instruction", row_no, file)
        extra = row.get(cols["input"]) if "input" in cols else None
        if extra is not None and str(extra).strip() and not (isinstance(extra, float) and extra != extra):
            user = f"{user}\n\n{extra}"
        answer = _text(row[cols["output"]], "output", row_no, file)
    else:
        user = _text(row[cols["prompt"]], "prompt", row_no, file)
        answer = _text(row[cols["completion"]], "completion", row_no, file)
    return {"prompt": system + [{"role": "user", "content": user}], "completion": [{"role": "assistant", "content": answer}]}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Rows of a snapshot file, read by the same readers that accepted it into the store."""
    from nocodetune.data.readers import read_snapshot

    return read_snapshot(path).rows


def build_examples(rows: list[dict[str, Any]], section: DatasetSection, file: str) -> tuple[str, dict[str, str], list[Example]]:
    """Map all rows; the first bad row stops everything (nothing is trained on bad data)."""
    if section.max_rows:
        rows = rows[: section.max_rows]
    if not rows:
        raise DataError("the dataset has no rows", file=file)
    columns = list(rows[0].keys())
    fmt, cols = resolve_columns(section, columns, file)
    examples = [row_to_example(r, fmt, cols, section.system_prompt, i, file) for i, r in enumerate(rows, start=1)]
    return fmt, cols, examples


def split_examples(examples: list[Example], eval_split: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Fixed-seed train/eval split; at least one example each side when a split is asked for."""
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    n_eval = 0
    if eval_split > 0 and len(examples) >= 2:
        n_eval = min(len(examples) - 1, max(1, round(len(examples) * eval_split)))
    eval_idx = set(order[:n_eval])
    train = [e for i, e in enumerate(examples) if i not in eval_idx]
    evals = [e for i, e in enumerate(examples) if i in eval_idx]
    return train, evals
