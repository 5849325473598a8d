"""Training processes: spawn one in its own process group, recognise it later, signal it.

A pid alone is not an identity (pids are reused), so a process is (pid, start time) and
is only "ours" while both match.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil


def process_start_time(pid: int) -> float | None:
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
        return abs(proc.create_time() - started_at) < 1.0
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


def spawn(command: list[str], *, cwd: Path, log_path: Path, env: dict[str, str], keep_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    """Start `command` in a new session (its own process group), output appended to `log_path`."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C in a terminal must not hit it; cancel signals the group
            pass_fds=keep_fds,
        )


def signal_group(pid: int, sig: signal.Signals) -> bool:
    """Send `sig` to the process group led by `pid`; False if it is gone."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
