"""The run lock: whoever holds `jobs/<job>/.run.lock` runs the job; nobody else may.

An exclusive `flock` (the same lock the `filelock` package takes on Unix, so tools using
either see each other). The runner takes it before spawning and passes the descriptor to
the training process, so the lock lives exactly as long as the job's process: a CLI that
detaches, or an API that restarts, leaves it held by the job itself.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from nocodetune.errors import ConflictError


class RunLock:
    """A non-blocking exclusive lock on one job's `.run.lock`."""

    def __init__(self, path: Path, job: str) -> None:
        self.path = path
        self.job = job
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ConflictError(
                f"job {self.job!r} is already running", field="name", hint="another process (CLI, API or a second server) holds its .run.lock"
            ) from None
        self.fd = fd
        return self

    def handed_over(self) -> None:
        """Close our descriptor without unlocking: the child inherited it and keeps the lock."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *_exc: object) -> None:
        self.release()


def is_locked(path: Path) -> bool:
    """True while some process (this one included) holds the lock."""
    if not path.exists():
        return False
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)
