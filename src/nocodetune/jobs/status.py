"""Job statuses and which actions each allows.

created → queued → running → succeeded | failed | cancelled | paused. A failed, cancelled
or paused job can run again (the trainer resumes from its last checkpoint); a succeeded
one is cloned instead, so that its outputs stay what its config produced. Paused differs
from cancelled only in intent: the user means to come back to it.
"""

from __future__ import annotations

from enum import Enum

from nocodetune.errors import ConflictError


class JobStatus(str, Enum):
    created = "created"
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    paused = "paused"


ACTIVE = frozenset({JobStatus.queued.value, JobStatus.running.value})
TERMINAL = frozenset({JobStatus.succeeded.value, JobStatus.failed.value, JobStatus.cancelled.value, JobStatus.paused.value})
RUNNABLE = frozenset({JobStatus.created.value, JobStatus.failed.value, JobStatus.cancelled.value, JobStatus.paused.value})
RESUMABLE = frozenset({JobStatus.failed.value, JobStatus.cancelled.value, JobStatus.paused.value})

INTERRUPTED = "interrupted"  # the error of a run whose process vanished without a final event


def check_can_run(name: str, status: str, *, resume: bool) -> None:
    """Refuse to start a job whose status does not allow it, saying what to do instead."""
    allowed = RESUMABLE if resume else RUNNABLE
    if status in allowed:
        return
    if status in ACTIVE:
        raise ConflictError(f"job {name!r} is already {status}", field="name", hint=f"wait for it, or cancel it with `nocodetune job cancel {name}`")
    if status == JobStatus.succeeded.value:
        raise ConflictError(
            f"job {name!r} already succeeded", field="name", hint=f"clone it to train again: `nocodetune job clone {name} NEW_NAME`"
        )
    raise ConflictError(f"job {name!r} has not run yet, so there is nothing to resume", field="name", hint=f"run it: `nocodetune job run {name}`")


def status_from_exit(exit_code: int | None, stop_action: str | None) -> tuple[str, str | None, str | None]:
    """(status, error, kind) for a run that ended without a terminal event in events.jsonl.

    `stop_action` is the pending stop request ("cancel" or "pause"), if the user asked. A
    run asked to stop that ended by a signal, or whose exit code nobody saw (the canceller
    was not its parent), ended as asked: it may have stopped before it could say so (a
    cancel during start-up, before the trainer listens for SIGTERM).
    """
    if exit_code == 0:
        return JobStatus.succeeded.value, None, None
    if stop_action and (exit_code is None or exit_code in (143, -15, -9, 137)):
        return (JobStatus.paused.value if stop_action == "pause" else JobStatus.cancelled.value), None, None
    if exit_code is None:
        return JobStatus.failed.value, INTERRUPTED, "killed"
    if exit_code < 0:
        return JobStatus.failed.value, f"{INTERRUPTED}: the training process was killed by signal {-exit_code}", "killed"
    return JobStatus.failed.value, f"the training process exited with code {exit_code} without reporting why", "error"
