"""Run pytest inside a private network namespace, where only loopback exists.

torch.distributed and Ray open listening sockets, and Ray tries to reach cloud-metadata
and usage addresses when it starts: inside `unshare -n` (root; `lo` brought up) nothing
can leave the machine and nothing outside can connect. Tests marked `distributed` or
`ray` skip outside such a namespace (`inside()`); run them through this file:

    python tests/netns.py -m "ray or distributed" --ignore tests/distributed/test_local.py   # CI's pass
    python tests/netns.py tests/distributed/test_local.py -x  # any pytest arguments

The default suite runs tests/distributed/test_local.py (two-process training, cancel and
resume on the tiny model) through `run_pytest` itself (tests/distributed/test_suite.py).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENV_FLAG = "NOCODETUNE_TEST_NETNS"


def inside() -> bool:
    """True inside a private network namespace: this helper's flag is set and only `lo` exists."""
    if os.environ.get(ENV_FLAG) != "1":
        return False
    import socket

    return [name for _, name in socket.if_nameindex()] == ["lo"]  # this namespace's interfaces (sysfs shows the host's)


def available() -> str | None:
    """Why a private network namespace cannot be made here (None when it can)."""
    if not sys.platform.startswith("linux"):
        return "private network namespaces need Linux"
    if os.geteuid() != 0:
        return "`unshare -n` needs root"
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "`unshare` and `ip` (util-linux, iproute2) are needed"
    return None


def command(pytest_args: list[str]) -> list[str]:
    """`unshare -n` running `ip link set lo up`, then pytest with `pytest_args` (from the repository root)."""
    inner = f"ip link set lo up && exec {shlex.quote(sys.executable)} -m pytest {' '.join(shlex.quote(a) for a in pytest_args)}"
    return ["unshare", "-n", "--", "sh", "-c", inner]


def env() -> dict[str, str]:
    out = dict(os.environ, **{ENV_FLAG: "1"})
    src = str(ROOT / "src")
    out["PYTHONPATH"] = os.pathsep.join(p for p in (src, str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return out


def run_pytest(pytest_args: list[str], *, timeout: float | None = None, capture: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(pytest_args), cwd=ROOT, env=env(), capture_output=capture, text=True, timeout=timeout, check=False)


def main(argv: list[str]) -> int:
    why = available()
    if why:
        print(f"cannot run tests in a private network namespace: {why}", file=sys.stderr)
        return 2
    return run_pytest(argv or ["-m", "distributed or ray"], capture=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
