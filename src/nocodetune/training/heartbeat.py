"""A sign of life while nothing else is said: a `heartbeat` event every HEARTBEAT_SECONDS.

A CPU step on a bigger model, a model load or the before-training samples can take
minutes with no event; without this the UI and `job run` would look frozen. The thread
only writes when the training loop has been quiet for a whole interval.
"""

from __future__ import annotations

import threading
import time

from nocodetune.records.events import HEARTBEAT_SECONDS, EventWriter


class Heartbeat:
    """Tracks the current stage and step; a daemon thread reports them when quiet."""

    def __init__(self, writer: EventWriter, interval: float = HEARTBEAT_SECONDS) -> None:
        self.writer = writer
        self.interval = interval
        self.stage = "starting"
        self.step: int | None = None
        self._stage_started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def set_stage(self, stage: str) -> None:
        if stage != self.stage:
            self.stage, self._stage_started = stage, time.time()

    def start(self) -> "Heartbeat":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(1.0):
            now = time.time()
            if now - self.writer.last_emit >= self.interval:
                self.writer.emit("heartbeat", stage=self.stage, step=self.step, elapsed_seconds=round(now - self._stage_started, 1))
