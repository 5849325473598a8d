"""Child processes that outlive their parent: spawn detached, recognise later, signal.

A pid alone is not an identity (pids are reused), so a process is (pid, create time) and
is only "ours" while both match. Jobs and servers both rely on this.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

_SAME_START_TOLERANCE_S = 0.1  # psutil reports start times in clock ticks (1/100 s)


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def is_same_process(pid: int | None, started_at: float | None) -> bool:
    """True while `pid` is alive (not a zombie) and started when we recorded."""
    if not pid or started_at is None:
        return False
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return abs(proc.create_time() - started_at) < _SAME_START_TOLERANCE_S
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def reap(pid: int) -> int | None:
    """Exit code of `pid` if it is our own finished child, else None (never blocks)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def spawn_detached(
    command: list[str],
    *,
    log_path: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    keep_fds: tuple[int, ...] = (),
) -> subprocess.Popen[bytes]:
    """Start `command` in a new session (its own process group), output appended to `log_path`.

    A new session means Ctrl-C in the caller's terminal does not reach it; stopping it
    is `signal_group`'s job.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=keep_fds,
        )


def signal_group(pid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the process group led by `pid`; False if it is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
