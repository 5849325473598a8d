"""Pre-flight validation for long-lived servers: a warm worker process.

`config.validate.preflight` runs the training code's own data, tokenizer and module
checks, which import transformers and torch. The API must stay light (it never imports
torch), so it validates through one worker process, `python -m nocodetune.jobs.preflight
--serve`, that stays alive between requests: its imports, tokenizers and module lists
are loaded once, so a validation after warm-up takes well under two seconds instead of
the ten-plus a fresh process needs. Requests and reports travel as JSON lines over the
worker's stdin/stdout; a worker that crashes or hangs is replaced. The CLI calls
`preflight` directly.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

from nocodetune.config.validate import ValidationReport
from nocodetune.errors import NocodetuneError
from nocodetune.records.job import ResolvedJob
from nocodetune.workspace import Workspace

TIMEOUT_S = 600.0
READY = "ready"


class ValidationWorker:
    """One warm validation process, started in the background and shared by the API's requests."""

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._lock = threading.Lock()  # one request at a time; the worker is single-threaded

    # -- lifecycle -------------------------------------------------------------------
    def start(self) -> None:
        """Start warming up (returns at once)."""
        with self._lock:
            self._ensure_process()

    def stop(self) -> None:
        with self._lock:
            self._kill()

    @property
    def ready(self) -> bool:
        return self._ready.is_set() and self._proc is not None and self._proc.poll() is None

    def _ensure_process(self) -> subprocess.Popen[str]:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        self._ready.clear()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "nocodetune.jobs.preflight", "--serve"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1,
        )
        threading.Thread(target=self._await_ready, args=(self._proc,), name="validator-warmup", daemon=True).start()
        return self._proc

    def _await_ready(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() == READY and proc is self._proc:
            self._ready.set()

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
        self._ready.clear()

    # -- requests --------------------------------------------------------------------
    def validate(self, ws: Workspace, resolved: ResolvedJob, job_dir: Path | None = None) -> ValidationReport:
        """`preflight(ws, resolved, job_dir)` in the worker; `stats.warming_up` says whether it had to wait for it."""
        request = {"workspace": str(ws.root), "resolved": resolved.model_dump(mode="json"), "job_dir": str(job_dir) if job_dir else None}
        with self._lock:
            proc = self._ensure_process()
            warming = not self._ready.is_set()
            started = time.monotonic()
            if not self._ready.wait(self.timeout_s):
                self._kill()
                raise NocodetuneError("the validator did not start", hint="run the job's validation from the command line to see why")
            line = self._ask(proc, json.dumps(request), self.timeout_s - (time.monotonic() - started))
        report = ValidationReport.model_validate_json(line)
        report.stats["warming_up"] = warming
        return report

    def _ask(self, proc: subprocess.Popen[str], request: str, timeout: float) -> str:
        assert proc.stdin is not None and proc.stdout is not None
        answer: list[str] = []
        reader = threading.Thread(target=lambda out=proc.stdout: answer.append(out.readline()), daemon=True)
        try:
            proc.stdin.write(request + "\n")
            proc.stdin.flush()
        except OSError:
            self._kill()
            raise NocodetuneError("the validator stopped unexpectedly; try again", hint="a new validator is started for the next request") from None
        reader.start()
        reader.join(max(timeout, 1.0))
        if reader.is_alive() or not answer or not answer[0].strip():
            self._kill()  # hung or crashed: the next request gets a fresh one
            raise NocodetuneError("validation did not finish", hint="run the job's validation from the command line to see where it stops")
        return answer[0]


_worker: ValidationWorker | None = None
_worker_lock = threading.Lock()


def validator() -> ValidationWorker:
    """This process's validation worker (created on first use)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = ValidationWorker()
            atexit.register(_worker.stop)  # the worker lives as long as this process
        return _worker


def validate_in_worker(ws: Workspace, resolved: ResolvedJob, job_dir: Path | None = None) -> ValidationReport:
    """`config.validate.preflight` run by this process's warm worker (what long-lived servers call)."""
    return validator().validate(ws, resolved, job_dir)


# -- the worker process --------------------------------------------------------------


def _warm_up() -> None:
    """Load what every validation needs: transformers, and the default model's tokenizer and modules."""
    from nocodetune.config.validate import load_model_tokenizer
    from nocodetune.modeling.modules import linear_module_names
    from nocodetune.model_source import resolve_model
    from nocodetune.records.schema import ModelSection

    try:
        load_model_tokenizer(resolve_model(ModelSection()))
        linear_module_names(ModelSection())
    except Exception:  # noqa: BLE001 - no default model installed: nothing to warm, validation still works
        pass


def _answer(line: str) -> str:
    from nocodetune.config.validate import preflight

    request: dict[str, Any] = json.loads(line)
    job_dir = Path(request["job_dir"]) if request.get("job_dir") else None
    try:
        report = preflight(Workspace(request["workspace"]), ResolvedJob.model_validate(request["resolved"]), job_dir)
    except NocodetuneError as exc:  # a problem with the job, not a crash: report it like one
        report = ValidationReport()
        report.error(str(exc), exc.field)
    except Exception as exc:  # noqa: BLE001 - the worker must answer every request
        report = ValidationReport()
        report.error(f"validation failed: {type(exc).__name__}: {exc}")
    return report.model_dump_json()


def serve(stdin: IO[str], stdout: IO[str]) -> int:
    from nocodetune.settings import apply_network_policy

    apply_network_policy()
    import warnings

    warnings.filterwarnings("ignore")
    _warm_up()
    stdout.write(READY + "\n")
    stdout.flush()
    for line in stdin:
        if line.strip():
            stdout.write(_answer(line) + "\n")
            stdout.flush()
    return 0


def main() -> int:
    if "--serve" not in sys.argv:
        print("usage: python -m nocodetune.jobs.preflight --serve", file=sys.stderr)
        return 2
    import os

    # The protocol owns the real stdout; anything a library prints goes to stderr instead.
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return serve(sys.stdin, protocol)


if __name__ == "__main__":
    sys.exit(main())
