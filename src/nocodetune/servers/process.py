"""Background server processes: remember our children (to reap them and read exit codes) and stop them."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from nocodetune.processes import create_time, is_same_process, signal_group, spawn_detached

# Children spawned by this process, kept to reap them (no zombies in long-lived callers).
_children: dict[int, subprocess.Popen[bytes]] = {}
_exit_codes: dict[int, int] = {}


def spawn(command: list[str], log_path: Path, env: dict[str, str] | None = None) -> tuple[int, float]:
    """Start `command` detached with output to `log_path`; return (pid, create_time)."""
    proc = spawn_detached(command, log_path=log_path, env=env)
    _children[proc.pid] = proc
    return proc.pid, create_time(proc.pid) or time.time()


def is_alive(pid: int, created: float) -> bool:
    """True while the process `pid` started at `created` runs (zombies count as gone)."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _exit_codes[pid] = _children.pop(pid).returncode
        return False
    return is_same_process(pid, created)


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
    if own_group:
        signal_group(pid, sig)
        return
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
