"""Pre-flight validation in a child process, for long-lived servers.

`config.validate.preflight` loads the tokenizer, which imports torch and transformers
(hundreds of MB, and CUDA state). The API must stay light and never hold torch, so it
validates through `python -m nocodetune.jobs.preflight`: the JSON request goes in on
stdin, the `ValidationReport` comes back on stdout. The CLI calls `preflight` directly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from nocodetune.records.job import ResolvedJob
from nocodetune.config.validate import ValidationReport
from nocodetune.errors import NocodetuneError
from nocodetune.workspace import Workspace

TIMEOUT_S = 600


def preflight_isolated(ws: Workspace, resolved: ResolvedJob, job_dir: Path | None = None) -> ValidationReport:
    """`preflight(ws, resolved, job_dir)`, run in a fresh Python process."""
    request = {"workspace": str(ws.root), "resolved": resolved.model_dump(mode="json"), "job_dir": str(job_dir) if job_dir else None}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "nocodetune.jobs.preflight"],
            input=json.dumps(request), capture_output=True, text=True, timeout=TIMEOUT_S, check=False,
        )
    except subprocess.TimeoutExpired:
        raise NocodetuneError(f"validation took longer than {TIMEOUT_S}s", hint="run `nocodetune job validate` to see where it stops") from None
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise NocodetuneError(f"validation crashed: {tail or 'no output'}", hint="run `nocodetune job validate` for the full error")
    return ValidationReport.model_validate_json(done.stdout)


def _main() -> int:
    from nocodetune.config.validate import preflight
    from nocodetune.settings import apply_network_policy

    apply_network_policy()
    request = json.loads(sys.stdin.read())
    job_dir = Path(request["job_dir"]) if request.get("job_dir") else None
    try:
        report = preflight(Workspace(request["workspace"]), ResolvedJob.model_validate(request["resolved"]), job_dir)
    except NocodetuneError as exc:  # a problem with the job, not a crash: report it like one
        report = ValidationReport()
        report.error(str(exc), exc.field)
    sys.stdout.write(report.model_dump_json())
    return 0


if __name__ == "__main__":
    sys.exit(_main())
