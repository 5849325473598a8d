"""A TrainerCallback that turns Trainer progress into `logs/events.jsonl` lines.

Also where a job stops early: on SIGTERM (save a checkpoint, then stop) and on a NaN loss
(stop at once; the runner reports `failed` with kind `nan`).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any, Callable

from transformers import TrainerCallback

from nocodetune.records.events import PREFERENCE_KEYS, EventWriter
from nocodetune.training.heartbeat import Heartbeat


class StopFlags:
    """Set from a signal handler or the callback; read by the runner after training."""

    def __init__(self) -> None:
        self.cancel = False
        self.nan_step: int | None = None


class EventsCallback(TrainerCallback):
    def __init__(
        self,
        writer: EventWriter,
        flags: StopFlags,
        started_fields: dict[str, Any],
        checkpoints: Path,
        heartbeat: Heartbeat | None = None,
        stop_check: Callable[[], bool] | None = None,
    ) -> None:
        self.writer = writer
        self.stop_check = stop_check  # several processes: every rank must agree to stop at the same step
        self.heartbeat = heartbeat
        self.flags = flags
        self.started_fields = started_fields
        self.checkpoints = checkpoints
        self.history: list[dict[str, Any]] = []  # every log, for loss.png and metrics.json
        self._t0 = 0.0
        self._step0 = 0
        self._last_t = 0.0
        self._last_tokens = 0
        self.tokens_at_start = 0  # tokens already seen by the checkpoint this run resumed from

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._t0 = self._last_t = time.time()
        self._step0 = state.global_step
        self._last_tokens = self.tokens_at_start = state.num_input_tokens_seen or 0
        self.writer.emit("started", pid=os.getpid(), total_steps=state.max_steps, **self.started_fields)
        if self.heartbeat is not None:
            self.heartbeat.set_stage("training")
        self.writer.emit("message", stage="training", text=f"training for {state.max_steps} steps")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        now = time.time()
        done = state.global_step - self._step0
        eta = (now - self._t0) / done * (state.max_steps - state.global_step) if done > 0 else None
        if self.heartbeat is not None:
            self.heartbeat.step = state.global_step
        self.writer.emit(
            "progress",
            step=state.global_step,
            total_steps=state.max_steps,
            epoch=round(float(state.epoch or 0), 4),
            progress=round(state.global_step / max(state.max_steps, 1), 4),
            eta_seconds=round(eta, 1) if eta is not None else None,
        )
        if self.stop_check is not None:
            self.flags.cancel = self.stop_check()
        if self.flags.cancel:
            control.should_save = True  # a checkpoint to resume from, then stop
            control.should_training_stop = True

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" not in logs:
            return
        now = time.time()
        tokens = state.num_input_tokens_seen or 0
        tps = (tokens - self._last_tokens) / max(now - self._last_t, 1e-9)
        self._last_t, self._last_tokens = now, tokens
        done = state.global_step - self._step0
        eta = (now - self._t0) / done * (state.max_steps - state.global_step) if done > 0 else None
        loss = float(logs["loss"])
        record = {
            "step": state.global_step,
            "total_steps": state.max_steps,
            "epoch": round(float(state.epoch or 0), 4),
            "loss": loss,
            "learning_rate": logs.get("learning_rate"),
            "tokens_per_second": round(tps, 1),
            "eta_seconds": round(eta, 1) if eta is not None else None,
            "progress": round(state.global_step / max(state.max_steps, 1), 4),
            **_preference_figures(logs, ""),
        }
        if logs.get("grad_norm") is not None:
            record["grad_norm"] = float(logs["grad_norm"])
        self.history.append(record)
        self.writer.emit("log", **record)
        if not math.isfinite(loss):
            self.flags.nan_step = state.global_step
            control.should_training_stop = True
            control.should_save = False

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any) -> None:
        if metrics and "eval_loss" in metrics:
            loss = float(metrics["eval_loss"])
            figures = _preference_figures(metrics, "eval_")
            # A preference (DPO/ORPO) loss is not a language-model loss: it has no perplexity.
            record = {"step": state.global_step, "eval_loss": loss, "perplexity": None if figures else perplexity(loss), **figures}
            self.history.append(record)
            self.writer.emit("eval", **record)

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        path = self.checkpoints / f"checkpoint-{state.global_step}"
        self.writer.emit("checkpoint", step=state.global_step, path=str(path))


def perplexity(loss: float) -> float | None:
    try:
        return round(math.exp(loss), 4) if math.isfinite(loss) else None
    except OverflowError:
        return None


def preference_log_keys() -> dict[str, str]:
    """Event field → the key TRL logs it under (`rewards_chosen` ← `rewards/chosen`)."""
    return {key: key.replace("rewards_", "rewards/", 1) for key in PREFERENCE_KEYS}


def _preference_figures(logs: dict[str, Any], prefix: str) -> dict[str, float]:
    """The DPO/ORPO reward figures present in a Trainer log, under the events' names."""
    return {key: float(logs[prefix + trl]) for key, trl in preference_log_keys().items() if logs.get(prefix + trl) is not None}
