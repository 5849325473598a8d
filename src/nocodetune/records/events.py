"""`logs/events.jsonl`: the one contract between a training process and everyone else,
and the one rule that turns a job's events into its status.

The training process (rank 0 only, when several run) appends one JSON object per line;
the job service, the CLI, the API's event stream and the UI only read. Readers keep a
byte offset and take complete lines only, so a line being written is never half-read.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal[
    "started",  # pid, total_steps, num_train_examples, num_eval_examples, method, objective, world_size, resumed_from
    "message",  # stage, text (loading model, tokenizing, sampling 2/4 ...)
    "progress",  # step, total_steps, epoch, progress (0..1), eta_seconds: after every optimizer step
    "heartbeat",  # stage, step, elapsed_seconds: while a long step or stage runs, every HEARTBEAT_SECONDS
    "log",  # step, total_steps, epoch, loss, learning_rate, grad_norm, tokens_per_second, eta_seconds, progress, [preference figures]
    "eval",  # step, eval_loss, perplexity, [preference figures]
    "checkpoint",  # step, path
    "sample",  # stage (before|after), prompt, output, expected
    "paused",  # step, checkpoint: stopped on request, resumable
    "finished",  # metrics, model_path, stop_reason (max_steps|epochs|early_stopping)
    "failed",  # error, kind (oom|nan|killed|config|data|model|error), hint
    "cancelled",  # step, checkpoint
]
TERMINAL_TYPES = frozenset({"finished", "failed", "cancelled", "paused"})
# The status each terminal event leaves a job in.
TERMINAL_STATUS = {"finished": "succeeded", "failed": "failed", "cancelled": "cancelled", "paused": "paused"}
HEARTBEAT_SECONDS = 10.0
# Preference-tuning figures (DPO/ORPO) carried by `log` and `eval` events, named as TRL logs them.
PREFERENCE_KEYS = ("rewards_chosen", "rewards_rejected", "rewards_margins", "rewards_accuracies")
PROGRESS_KEYS = ("step", "total_steps", "loss", "progress", "eta_seconds", "tokens_per_second")


class Event(BaseModel):
    """One progress event. Extra fields depend on `type` (see EventType)."""

    model_config = ConfigDict(extra="allow")

    type: EventType
    time: float = Field(default_factory=time.time)
    run: int | None = None

    def data(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class EventWriter:
    """Append-only writer, flushed per line so readers see progress at once.

    Thread-safe: the heartbeat thread and the training loop write through one writer.
    `last_emit` is when the last line was written (the heartbeat uses it).
    """

    def __init__(self, path: Path, run: int | None = None) -> None:
        self.path = path
        self.run = run
        self.last_emit = time.time()
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def emit(self, type: EventType, **fields: Any) -> Event:
        event = Event(type=type, run=self.run, **fields)
        line = json.dumps(event.data(), default=str)
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            self.last_emit = event.time
        return event


def read_events_with_offsets(path: Path, offset: int = 0) -> list[tuple[Event, int]]:
    """Complete events after byte `offset`, each with the offset just after its line."""
    if not path.exists():
        return []
    with open(path, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read()
    out: list[tuple[Event, int]] = []
    position = offset
    for raw in chunk.splitlines(keepends=True):
        if not raw.endswith(b"\n"):
            break  # a line still being written
        position += len(raw)
        try:
            out.append((Event.model_validate(json.loads(raw)), position))
        except (ValueError, TypeError, RecursionError):
            continue  # a corrupt line must not stop progress reporting
    return out


def read_events(path: Path, offset: int = 0) -> tuple[list[Event], int]:
    """Events from byte `offset` on, and the offset after the last complete line."""
    pairs = read_events_with_offsets(path, offset)
    return [e for e, _ in pairs], (pairs[-1][1] if pairs else offset)


def last_started_offset(path: Path) -> int:
    """Byte offset where the latest run's `started` event begins (0 when there is none)."""
    last, previous_end = 0, 0
    for event, end in read_events_with_offsets(path):
        if event.type == "started":
            last = previous_end
        previous_end = end
    return last


def latest_run_events(path: Path) -> list[Event]:
    """The events of the latest run (from its `started` on; all events when none started)."""
    events, _ = read_events(path, last_started_offset(path))
    return events


def summarize_events(events: Iterable[Event]) -> dict[str, Any]:
    """Status, progress, error and times implied by a job's events: the events → status rule.

    A `started` with no terminal event after it reads as "running"; whether it really
    runs is for the caller to decide (a dead process means it was interrupted).
    """
    out: dict[str, Any] = {"status": "created"}
    for ev in events:
        data = ev.data()
        when = datetime.fromtimestamp(ev.time, timezone.utc)
        if ev.type == "started":
            out.update(status="running", started_at=when, finished_at=None, error=None, error_kind=None)
            if data.get("total_steps") is not None:
                out["total_steps"] = data["total_steps"]
        elif ev.type in ("log", "progress"):
            for key in PROGRESS_KEYS:
                if data.get(key) is not None:
                    out[key] = data[key]
        elif ev.type in TERMINAL_STATUS:
            out.update(status=TERMINAL_STATUS[ev.type], finished_at=when, eta_seconds=0.0 if ev.type == "finished" else out.get("eta_seconds"))
            if ev.type == "finished":
                out["progress"] = 1.0
            if ev.type == "failed":
                out.update(error=data.get("error"), error_kind=data.get("kind"))
    return out
