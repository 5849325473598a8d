"""Processes of background servers: spawn detached, recognise, and stop.

A pid alone is not an identity (pids are reused), so a server process is recognised by
pid AND its psutil create time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil

# Children spawned by this process, kept to reap them (no zombies in long-lived callers).
_children: dict[int, subprocess.Popen[bytes]] = {}
_exit_codes: dict[int, int] = {}


def spawn(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> tuple[int, float]:
    """Start `command` in its own session with output to `log_path`; return (pid, create_time)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env, close_fds=True)
    _children[proc.pid] = proc
    return proc.pid, psutil.Process(proc.pid).create_time()


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def is_alive(pid: int, created: float) -> bool:
    """True while the process `pid` started at `created` runs (zombies count as gone)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _exit_codes[pid] = _children.pop(pid).returncode
        return False
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) > 0.05:
            return False  # the pid now belongs to another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def exit_code(pid: int) -> int | None:
    """Exit status of a child this process spawned, once it has ended."""
    child = _children.get(pid)
    return child.poll() if child is not None else _exit_codes.get(pid)


def terminate(pid: int, created: float, *, own_group: bool, timeout: float = 10.0) -> bool:
    """SIGTERM (the whole group for a detached server), wait, then SIGKILL. False if already gone."""
    if not is_alive(pid, created):
        return False
    _signal(pid, signal.SIGTERM, own_group)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid, created):
            break
        time.sleep(0.1)
    else:
        _signal(pid, signal.SIGKILL, own_group)
        for _ in range(50):
            if not is_alive(pid, created):
                break
            time.sleep(0.1)
    child = _children.pop(pid, None)
    if child is not None:
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    return True


def _signal(pid: int, sig: signal.Signals, own_group: bool) -> None:
    try:
        if own_group:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass
