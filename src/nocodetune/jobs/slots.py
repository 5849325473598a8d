"""Slots: how many jobs this machine runs at once, enforced by lock files every process sees.

A slot is a lock file `<workspace>/.slots/<host>/<slot>.lock` (`gpu<id>` per visible GPU,
else `cpu<i>` for i < max_concurrent_jobs, default 1). Whoever starts a job takes the
slots it needs with a non-blocking `flock` and hands the descriptors to the job's
process, like the run lock: the slots are held exactly as long as the job's process
lives, whichever face started it, and are freed by the kernel when it exits or is killed.

The rule (docs/DECISIONS.md, "Slots and the queue"): a local job takes one slot per
training process on this machine (at most all of them: on a 1-slot CPU a 2-process job
takes the one slot); a Ray job takes none (the cluster schedules its own resources); an
export takes one; a model server takes none.

`dispatch_lock` serialises the decisions "which queued job starts now" across processes,
so two dispatchers never split the free slots between them.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nocodetune.config.validate_resources import visible_gpus
from nocodetune.errors import ConflictError
from nocodetune.settings import get_settings
from nocodetune.workspace import Workspace

DISPATCH_LOCK_TIMEOUT_S = 60.0


def plan_slots(max_concurrent: int | None, gpus: list[str]) -> list[str | None]:
    """One slot per GPU (capped by max_concurrent), else max_concurrent CPU slots (default 1)."""
    if gpus:
        return list(gpus[: max_concurrent or len(gpus)])
    return [None] * max(1, max_concurrent or 1)


def slot_name(gpu: str | None, index: int) -> str:
    return f"gpu{gpu}" if gpu is not None else f"cpu{index}"


@dataclass
class HeldSlots:
    """Slots this process holds (until it hands them to a job's process or releases them)."""

    names: list[str]
    gpus: list[str]
    fds: list[int] = field(default_factory=list)

    def handed_over(self) -> None:
        """Close our descriptors without unlocking: the child inherited them and holds the slots now."""
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()

    def release(self) -> None:
        for fd in self.fds:
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self.fds.clear()


class SlotPool:
    """This machine's slots in a workspace."""

    def __init__(self, ws: Workspace, slots: list[str | None] | None = None) -> None:
        self.ws = ws
        if slots is None:
            slots = plan_slots(get_settings().max_concurrent_jobs, visible_gpus())
        self.slots = slots
        self.names = [slot_name(gpu, i) for i, gpu in enumerate(slots)]
        self.root = ws.root / ".slots"
        self.dir = self.root / _host()

    @property
    def capacity(self) -> int:
        return len(self.slots)

    def _path(self, name: str) -> Path:
        return self.dir / f"{name}.lock"

    def dispatch_lock(self, timeout: float = DISPATCH_LOCK_TIMEOUT_S) -> AbstractContextManager[None]:
        return dispatch_lock(self.ws, timeout)

    def try_take(self, count: int, owner: str) -> HeldSlots | None:
        """`count` free slots (capped at the capacity), locked by this process; None when not enough are free."""
        count = min(max(count, 1), self.capacity)
        self.dir.mkdir(parents=True, exist_ok=True)
        held = HeldSlots(names=[], gpus=[])
        for gpu, name in zip(self.slots, self.names):
            if len(held.names) == count:
                break
            fd = os.open(self._path(name), os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            os.ftruncate(fd, 0)
            os.pwrite(fd, owner.encode("utf-8", "replace") + b"\n", 0)  # who holds it, for messages
            held.fds.append(fd)
            held.names.append(name)
            if gpu is not None:
                held.gpus.append(gpu)
        if len(held.names) < count:
            held.release()
            return None
        return held

    def holders(self) -> dict[str, str]:
        """{slot: what holds it} for the slots in use now."""
        out = {}
        for name in self.names:
            path = self._path(name)
            if not path.exists():
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except OSError:
                    out[name] = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "?"
                else:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        return out

    def free(self) -> int:
        return self.capacity - len(self.holders())


@contextmanager
def dispatch_lock(ws: Workspace, timeout: float = DISPATCH_LOCK_TIMEOUT_S) -> Iterator[None]:
    """Exclusive across every process of the workspace while one dispatcher (or a cancel) decides."""
    root = ws.root / ".slots"
    root.mkdir(parents=True, exist_ok=True)
    fd = os.open(root / "dispatch.lock", os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise ConflictError("another process has held the job queue for over a minute", hint="retry; if it persists, look for a hung nocodetune process") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock


def _host() -> str:
    """Slots are per machine: a workspace on shared storage must not pool two machines' GPUs."""
    name = socket.gethostname() or "localhost"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:100]


def take_for_export(ws: Workspace, owner: str, pool: SlotPool | None = None) -> HeldSlots:
    """One slot for an export (or other short heavy work), or ConflictError (409) saying who uses them.

    Exports do not queue: while a job waits for local slots, or all slots are busy, the
    export is refused and can be retried. Hand the result's descriptors to the export's
    process (like a job's) or release it when done.
    """
    from nocodetune.records.queue import list_entries

    pool = pool or SlotPool(ws)
    with pool.dispatch_lock():
        waiting = [e.job for e in list_entries(ws) if e.slots > 0]
        held = None if waiting else pool.try_take(1, owner)
    if held is None:
        busy = ", ".join(sorted(set(pool.holders().values()))) or "none"
        raise ConflictError(
            f"no free slot for {owner}: in use by {busy}" + (f"; queued: {', '.join(waiting)}" if waiting else ""),
            hint="retry when a job has finished (NOCODETUNE_MAX_CONCURRENT_JOBS raises the number of CPU slots)",
        )
    return held
