"""The local executor: a queue of jobs and a fixed number of slots to run them in.

One slot per GPU (the job is pinned with CUDA_VISIBLE_DEVICES), else
`max_concurrent_jobs` slots (default 1: on a CPU two trainings only slow each other).
Each running job has a follower thread that tails its events into the registry.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
from collections import deque

from nocodetune import db
from nocodetune.errors import ConflictError, NocodetuneError
from nocodetune.jobs.registry import get_row
from nocodetune.jobs.runner import CommandFactory, RunHandle, follow_run, launch_run
from nocodetune.jobs.status import JobStatus
from nocodetune.workspace import Workspace

log = logging.getLogger("nocodetune.jobs")


def detect_gpus() -> list[str]:
    """GPU ids this process may use, without importing torch (unless it already is)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        try:
            return [str(i) for i in range(torch.cuda.device_count())]
        except Exception:  # a broken CUDA install means no GPUs, not a crash
            return []
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


def plan_slots(max_concurrent: int | None, gpus: list[str]) -> list[str | None]:
    """One slot per GPU (capped by max_concurrent), else max_concurrent CPU slots."""
    if gpus:
        return list(gpus[: max_concurrent or len(gpus)])
    return [None] * max(1, max_concurrent or 1)


class LocalExecutor:
    """Runs queued jobs as local processes, at most one per slot."""

    def __init__(self, ws: Workspace, *, slots: list[str | None], command: CommandFactory | None = None, poll_s: float = 0.5) -> None:
        self.ws = ws
        self.command = command
        self.poll_s = poll_s
        self._free: list[str | None] = list(slots)
        self._queue: deque[tuple[str, bool]] = deque()
        self._active: dict[str, RunHandle] = {}
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- control ---------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._spawn_thread(self._dispatch, "jobs-dispatcher")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop queueing and following; running jobs keep running (they hold their own lock)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    def submit(self, name: str, resume: bool = False) -> None:
        with self._cond:
            if all(queued != name for queued, _ in self._queue):
                self._queue.append((name, resume))
            self._cond.notify_all()

    def remove(self, name: str) -> bool:
        with self._cond:
            before = len(self._queue)
            self._queue = deque(item for item in self._queue if item[0] != name)
            return len(self._queue) != before

    def adopt(self, handle: RunHandle) -> None:
        """Follow a run that outlived the service that started it."""
        with self._cond:
            slot = handle.gpu if handle.gpu in self._free else (self._free[0] if self._free else None)
            taken = slot in self._free
            if taken:
                self._free.remove(slot)
            self._active[handle.job] = handle
        self._spawn_thread(lambda: self._follow(handle, slot, taken), f"follow-{handle.job}")

    def watching(self, name: str) -> bool:
        with self._cond:
            return name in self._active

    def queued(self) -> list[str]:
        with self._cond:
            return [name for name, _ in self._queue]

    # -- threads ---------------------------------------------------------------------
    def _spawn_thread(self, target: object, name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)  # type: ignore[arg-type]
        self._threads = [t for t in self._threads if t.is_alive()]
        self._threads.append(thread)
        thread.start()

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                while not self._stop.is_set() and not (self._queue and self._free):
                    self._cond.wait(1.0)
                if self._stop.is_set():
                    return
                name, resume = self._queue.popleft()
                slot = self._free.pop(0)
            handle = self._launch(name, resume, slot)
            if handle is None:
                self._release(name, slot, True)
                continue
            with self._cond:
                self._active[name] = handle
            self._spawn_thread(lambda h=handle, s=slot: self._follow(h, s, True), f"follow-{name}")

    def _launch(self, name: str, resume: bool, slot: str | None) -> RunHandle | None:
        try:
            with db.session(self.ws) as s:
                if get_row(s, self.ws, name).status != JobStatus.queued.value:
                    return None  # cancelled (or run elsewhere) while it waited
            return launch_run(self.ws, name, resume=resume, from_queue=True, gpu=slot, command=self.command)
        except ConflictError:
            return None  # someone else holds its lock: they run it
        except NocodetuneError as exc:
            self._mark_failed(name, exc.message, "config")
        except Exception as exc:  # a spawn failure must fail the job, not the dispatcher
            log.exception("could not start job %s", name)
            self._mark_failed(name, f"could not start the training process: {exc}", "error")
        return None

    def _mark_failed(self, name: str, error: str, kind: str) -> None:
        try:
            with db.session(self.ws) as s:
                row = get_row(s, self.ws, name)
                row.status, row.error, row.error_kind, row.finished_at = JobStatus.failed.value, error, kind, db.utcnow()
        except NocodetuneError:
            pass  # the job was deleted meanwhile

    def _follow(self, handle: RunHandle, slot: str | None, owns_slot: bool) -> None:
        try:
            follow_run(self.ws, handle, stop=self._stop, poll_s=self.poll_s)
        except Exception:
            log.exception("lost track of job %s", handle.job)
        finally:
            self._release(handle.job, slot, owns_slot)

    def _release(self, name: str, slot: str | None, owns_slot: bool) -> None:
        with self._cond:
            self._active.pop(name, None)
            if owns_slot:
                self._free.append(slot)
            self._cond.notify_all()
