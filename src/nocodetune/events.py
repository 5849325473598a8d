"""`logs/events.jsonl`: the one contract between a training process and everyone else.

The training process appends one JSON object per line; the job service, the CLI and the
UI only read. Readers keep a byte offset and only take complete lines, so a line being
written is never half-read.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "started",  # run, pid, total_steps, num_train_examples, num_eval_examples, resumed_from
    "message",  # stage: text (loading model, tokenizing, evaluating ...)
    "log",  # step, total_steps, epoch, loss, learning_rate, tokens_per_second, eta_seconds, progress
    "eval",  # step, eval_loss, perplexity
    "checkpoint",  # step, path
    "sample",  # stage (before|after), prompt, output, expected
    "finished",  # metrics, model_path
    "failed",  # error, kind (oom|nan|killed|config|data|model|error), hint
    "cancelled",  # step, checkpoint
]
TERMINAL_TYPES = frozenset({"finished", "failed", "cancelled"})


class Event(BaseModel):
    """One progress event. Extra fields depend on `type` (see EventType)."""

    model_config = ConfigDict(extra="allow")

    type: EventType
    time: float = Field(default_factory=time.time)
    run: int | None = None

    def data(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class EventWriter:
    """Append-only writer, flushed per line so readers see progress at once."""

    def __init__(self, path: Path, run: int | None = None) -> None:
        self.path = path
        self.run = run
        path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, type: EventType, **fields: Any) -> Event:
        event = Event(type=type, run=self.run, **fields)
        line = json.dumps(event.data(), default=str)
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return event


def read_events(path: Path, offset: int = 0) -> tuple[list[Event], int]:
    """Events from byte `offset` on, and the offset after the last complete line."""
    if not path.exists():
        return [], offset
    with open(path, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read()
    events: list[Event] = []
    consumed = 0
    for raw in chunk.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # a line still being written
        consumed += len(raw)
        try:
            events.append(Event.model_validate(json.loads(raw)))
        except (ValueError, TypeError):
            continue  # a corrupt line must not stop progress reporting
    return events, offset + consumed

