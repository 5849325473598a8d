"""The API's executor: a dispatcher thread over the shared on-disk queue, and a follower per run it starts.

The queue and the slots live on disk (`jobs/queue.py`, `jobs/slots.py`), so this class
holds no queue of its own: it dispatches whatever any face queued, in order, whenever
slots are free (a GPU slot pins the job with CUDA_VISIBLE_DEVICES), and follows the
runs it started or adopted, copying their events into the registry. Runs go on when it
stops; the next executor adopts them.
"""

from __future__ import annotations

import logging
import threading

from nocodetune.config.validate_resources import visible_gpus as detect_gpus  # noqa: F401 - the one GPU count, re-exported
from nocodetune.jobs.queue import dispatch_once, enqueue
from nocodetune.jobs.runner import CommandFactory, RunHandle, follow_run
from nocodetune.jobs.slots import SlotPool, plan_slots  # noqa: F401 - plan_slots re-exported for callers of this module
from nocodetune.records.queue import list_entries, remove_entry
from nocodetune.workspace import Workspace

log = logging.getLogger("nocodetune.jobs")


class LocalExecutor:
    """Dispatches the workspace's queue into this machine's slots, and follows what it starts."""

    def __init__(self, ws: Workspace, *, slots: list[str | None] | None = None, command: CommandFactory | None = None, poll_s: float = 0.5) -> None:
        self.ws = ws
        self.command = command
        self.poll_s = poll_s
        self.pool = SlotPool(ws, slots)
        self._active: dict[str, RunHandle] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._kick = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- control ---------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._spawn_thread(self._dispatch, "jobs-dispatcher")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop dispatching and following; running jobs keep running (they hold their own locks)."""
        self._stop.set()
        self._kick.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def submit(self, name: str, resume: bool = False) -> None:
        """Queue the job (on disk, for every dispatcher) and dispatch now."""
        enqueue(self.ws, name, resume=resume, origin="api")
        self.kick()

    def kick(self) -> None:
        self._kick.set()

    def remove(self, name: str) -> bool:
        return remove_entry(self.ws.job(name))

    def adopt(self, handle: RunHandle) -> None:
        """Follow a run that outlived the service that started it."""
        with self._cond:
            if handle.job in self._active:
                return
            self._active[handle.job] = handle
        self._spawn_thread(lambda: self._follow(handle), f"follow-{handle.job}")

    def watching(self, name: str) -> bool:
        with self._cond:
            return name in self._active

    def queued(self) -> list[str]:
        return [e.job for e in list_entries(self.ws)]

    # -- threads ---------------------------------------------------------------------
    def _spawn_thread(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            try:
                for handle in dispatch_once(self.ws, self.pool, command=self.command):
                    self.adopt(handle)
            except Exception:  # noqa: BLE001 - the dispatcher must outlive one bad round (e.g. a busy registry)
                log.exception("job dispatch failed; retrying")
            self._kick.wait(self.poll_s)
            self._kick.clear()

    def _follow(self, handle: RunHandle) -> None:
        try:
            follow_run(self.ws, handle, stop=self._stop, poll_s=self.poll_s)
        except Exception:
            log.exception("lost track of job %s", handle.job)
        finally:
            with self._cond:
                self._active.pop(handle.job, None)
            self.kick()  # its slots are free: the next job may start
