"""The Ray executor: a run is a Ray job, submitted, watched, stopped and logged through Ray's job submission API.

The run record keeps the Ray submission id and the cluster address (`executor_ref`,
`executor_address`), so status, logs, cancel, resume and reconcile after an API restart
all go through Ray, whichever process submitted the job. The job's entrypoint runs the
same training code as a local run: `python -m nocodetune.training JOB_DIR` for one
process, or the Ray Train driver (`python -m nocodetune.training.distributed ray ...`)
for num_nodes × num_processes > 1. Every node reads and writes the job folder directly,
so the workspace must be on storage every node sees at the same path (validate checks).

`ray` is imported only when a Ray run is touched, so the API stays light without it.
"""

from __future__ import annotations

import logging
import secrets
import shlex
import time
from dataclasses import dataclass
from typing import Any

from nocodetune.config.validate_resources import ResourcePlan, ray_address_problem
from nocodetune.errors import NocodetuneError
from nocodetune.records.io import write_text_atomic
from nocodetune.settings import get_settings
from nocodetune.workspace import JobPaths, Workspace

log = logging.getLogger("nocodetune.jobs")

# Ray job states → the exit code a local process would have had (STOPPED = SIGTERM'd: 143).
_EXIT = {"SUCCEEDED": 0, "STOPPED": 143, "FAILED": 1}
STATUS_EVERY_S = 2.0  # how often a follower asks Ray (each question is an HTTP call to the head)


@dataclass(frozen=True)
class RayRef:
    address: str
    submission_id: str


@dataclass
class RayState:
    ended: bool
    exit_code: int | None
    status: str | None  # Ray's job status, None when the cluster did not answer
    message: str | None = None


class RayUnavailable(NocodetuneError):
    status_code = 503


_clients: dict[str, Any] = {}
_unreachable_until: dict[str, float] = {}  # address → monotonic time: don't wait on a dead head for every request


def _client(address: str) -> Any:
    """A job-submission client for `address`, after a short answer check (the SDK itself has no timeout)."""
    if time.monotonic() < _unreachable_until.get(address, 0.0):
        raise RayUnavailable(f"the Ray cluster at {address} did not answer a moment ago", field="resources.ray_address")
    client = _clients.get(address)
    if client is None:
        problem = ray_address_problem(address)
        if problem:
            _unreachable_until[address] = time.monotonic() + 10.0
            raise RayUnavailable(problem, field="resources.ray_address")
        from ray.job_submission import JobSubmissionClient

        client = _clients[address] = JobSubmissionClient(address)
    return client


def _forget(address: str) -> None:
    """After a failed call: check the answer again next time, and not before a few seconds."""
    _clients.pop(address, None)
    _unreachable_until[address] = time.monotonic() + 5.0


def entrypoint(paths: JobPaths, plan: ResourcePlan) -> str:
    """The command Ray runs on the cluster (nocodetune must be installed there, the job folder visible)."""
    job_dir = shlex.quote(str(paths.root))
    if plan.world_size <= 1:
        return f"python -m nocodetune.training {job_dir}"
    return f"python -m nocodetune.training.distributed ray --num-nodes {plan.num_nodes} --nproc-per-node {plan.num_processes} {job_dir}"


def submit(ws: Workspace, paths: JobPaths, *, n: int, resume: bool, plan: ResourcePlan, grace_s: float | None = None) -> RayRef:
    """Submit run `n` of the job to the cluster; returns the Ray submission id."""
    if not plan.ray_address:
        raise NocodetuneError("the job's executor is ray but no Ray address is set", field="resources.ray_address",
                              hint="set resources.ray_address or NOCODETUNE_RAY_ADDRESS to http://HEAD:8265")
    client = _client(plan.ray_address)
    grace = get_settings().cancel_grace_seconds if grace_s is None else grace_s
    env = {
        "NOCODETUNE_RUN": str(n),
        "NOCODETUNE_WORKSPACE": str(ws.root),
        "PYTHONUNBUFFERED": "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        # Ray's stop sends SIGTERM, then SIGKILL after this long: the trainer's time to save a checkpoint.
        "RAY_JOB_STOP_WAIT_TIME_S": str(max(3, int(grace))),
    }
    if resume:
        env["NOCODETUNE_RESUME"] = "1"
    submission_id = f"nocodetune-{paths.name}-run{n}-{secrets.token_hex(3)}"
    kwargs: dict[str, Any] = {}
    if plan.world_size <= 1:
        kwargs["entrypoint_num_cpus"] = 1  # one training process: reserve its CPU like a worker would
    client.submit_job(
        entrypoint=entrypoint(paths, plan),
        submission_id=submission_id,
        runtime_env={"env_vars": env},
        metadata={"nocodetune_job": paths.name, "nocodetune_run": str(n)},
        **kwargs,
    )
    return RayRef(plan.ray_address, submission_id)


def state(ref: RayRef) -> RayState:
    """Where the Ray job is; a cluster that does not answer is 'not ended' (the run may well go on)."""
    try:
        info = _client(ref.address).get_job_info(ref.submission_id)
    except RayUnavailable as exc:
        return RayState(False, None, None, exc.message)
    except Exception as exc:  # noqa: BLE001 - unreachable, or Ray does not know the id (cluster restarted)
        if "does not exist" in str(exc) or "404" in str(exc):
            return RayState(True, None, None, f"the Ray cluster at {ref.address} no longer knows job {ref.submission_id} (was it restarted?)")
        _forget(ref.address)
        return RayState(False, None, None, str(exc))
    status = info.status.value if hasattr(info.status, "value") else str(info.status)
    ended = status in _EXIT
    message = info.message if status == "FAILED" else None
    return RayState(ended, _EXIT.get(status), status, message)


def stop(ref: RayRef) -> bool:
    """Ray's stop: SIGTERM to the job's driver (which asks its workers to checkpoint), SIGKILL after the grace time."""
    try:
        return bool(_client(ref.address).stop_job(ref.submission_id))
    except Exception as exc:  # noqa: BLE001 - already ended, or unreachable: the caller's status check says which
        log.warning("could not stop Ray job %s: %s", ref.submission_id, exc)
        return False


def logs(ref: RayRef) -> str | None:
    try:
        return _client(ref.address).get_job_logs(ref.submission_id)
    except Exception:  # noqa: BLE001 - logs are best effort; status is what matters
        return None


def sync_log(paths: JobPaths, n: int, ref: RayRef) -> None:
    """Copy the Ray job's log (driver and forwarded worker output) into `logs/run-<n>.log`."""
    text = logs(ref)
    if text is None:
        return
    write_text_atomic(paths.run_log(n), text)


def wait_ended(ref: RayRef, timeout: float) -> RayState:
    deadline = time.monotonic() + timeout
    current = state(ref)
    while not current.ended and time.monotonic() < deadline:
        time.sleep(0.5)
        current = state(ref)
    return current
