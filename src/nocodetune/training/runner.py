"""Run one job folder end to end: data → model → the objective's trainer (SFT, DPO, ORPO) → outputs, reporting events.

Every outcome ends in exactly one terminal event: `finished` (exit 0), `failed` with a
kind and a hint (exit 1), or `cancelled` after SIGTERM, once a checkpoint is saved
(exit 143). Cheap checks (config, data, QLoRA requirements) run before anything heavy
is imported, so a bad job fails in a second rather than after loading a model.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Literal

from nocodetune.records.job import ResolvedJob, read_resolved
from nocodetune.records.runs import read_stop
from nocodetune.errors import ConfigError, DataError, ModelNotFoundError, NocodetuneError
from nocodetune.records.events import read_events
from nocodetune.settings import Settings, apply_network_policy
from nocodetune.training import distributed
from nocodetune.training.heartbeat import Heartbeat
from nocodetune.training.workflows import check_objective
from nocodetune.data.examples import Example, read_examples, split_examples
from nocodetune.workspace import JobPaths

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 143


class NanLoss(Exception):
    pass


def _run_number(paths: JobPaths) -> int:
    env = os.environ.get("NOCODETUNE_RUN")
    if env and env.isdigit():
        return int(env)
    events, _ = read_events(paths.events)
    return max((e.run or 0 for e in events), default=0) + 1


def _kind(exc: BaseException) -> str:
    if getattr(exc, "failure_kind", None):
        return str(exc.failure_kind)  # type: ignore[attr-defined]  # e.g. "disk" (training.outputs.DiskFullError)
    if isinstance(exc, ConfigError):
        return "config"
    if isinstance(exc, DataError):
        return "data"
    if isinstance(exc, ModelNotFoundError):
        return "model"
    if isinstance(exc, NocodetuneError):
        return "config"
    return "error"


def _is_oom(exc: BaseException) -> bool:
    name = type(exc).__name__
    return name in ("OutOfMemoryError", "MemoryError") or "out of memory" in str(exc).lower()


def load_job(paths: JobPaths) -> ResolvedJob:
    return read_resolved(paths)


def preflight(job: ResolvedJob) -> None:
    """Checks that need no torch: reporting (W&B set up when asked for), QLoRA requirements."""
    from nocodetune.training.reporting import check_reporting

    check_reporting(job.config)
    if job.config.method == "qlora":
        missing = [p for p in ("bitsandbytes",) if importlib.util.find_spec(p) is None]
        import torch  # cheap next to a model load; needed to see the GPU

        if missing or not torch.cuda.is_available():
            why = "bitsandbytes is not installed" if missing else "no CUDA GPU is available"
            raise ConfigError(
                f"method 'qlora' needs a CUDA GPU and bitsandbytes, but {why}",
                field="method",
                hint="use method: lora (same adapter, full-precision base) or run on a machine with an NVIDIA GPU and `pip install bitsandbytes`",
            )


def load_examples(job: ResolvedJob, paths: JobPaths) -> tuple[str, list[Example], list[Example]]:
    """The job's examples split into (train, eval), refusing the whole run if any row is unusable.

    `data.examples.read_examples` is what validate runs too, so a job that validated
    trains on exactly the rows validate accepted, and a refusal reads the same in both.
    """
    if not job.datasets:
        raise DataError("the job has no dataset", field="dataset.ref", hint="set dataset.ref to name@version")
    all_examples: list[Example] = []
    fmt = ""
    for snap in job.datasets:
        file = paths.root / snap.file
        if not file.is_file():
            raise DataError(f"dataset snapshot {snap.file} is missing from the job folder", file=str(file))
        found = read_examples(file, job.config.dataset)
        found.raise_if_refused(f"{snap.name}@{snap.version}")
        fmt = found.format
        all_examples.extend(found.examples)
    train_idx, eval_idx = split_examples(all_examples, job.config.training.eval_split, job.config.training.seed)
    return fmt, [all_examples[i] for i in train_idx], [all_examples[i] for i in eval_idx]


class JobRun:
    """State of one training process; `run()` returns the exit code."""

    def __init__(self, job_dir: Path) -> None:
        self.paths = JobPaths(Path(job_dir).resolve())
        self.writer = distributed.event_writer(self.paths.events, run=_run_number(self.paths))  # rank 0 only writes
        self._training = False
        distributed.install_sigterm(self._on_sigterm, training=False)  # before the heavy imports below
        from nocodetune.training.callbacks import StopFlags

        self.flags = StopFlags()
        self.t0 = time.time()
        self.heartbeat = Heartbeat(self.writer)

    def message(self, stage: str, text: str) -> None:
        self.heartbeat.set_stage(stage)
        self.writer.emit("message", stage=stage, text=text)

    def stop_event(self) -> Literal["paused", "cancelled"]:
        """What a SIGTERM meant: the stop request on disk says pause or cancel (a bare SIGTERM cancels)."""
        request = read_stop(self.paths)
        return "paused" if request is not None and request.action == "pause" else "cancelled"

    @property
    def training(self) -> bool:
        return self._training

    @training.setter
    def training(self, value: bool) -> None:
        self._training = value
        distributed.install_sigterm(self._on_sigterm, training=value)  # other ranks listen once they train

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        if self._training:
            self.flags.cancel = True  # the callback saves a checkpoint at the end of this step, then stops
            return
        # Nothing to save yet. Report and leave at once: an exception raised here could land inside
        # any library's import or `except Exception` and turn a cancel into a failure.
        distributed.event_writer(self.paths.events, run=self.writer.run).emit(self.stop_event(), step=0, checkpoint=None)
        os._exit(EXIT_CANCELLED)

    def run(self) -> int:
        distributed.install_sigterm(self._on_sigterm, training=self._training)
        distributed.die_with_launcher()
        self.heartbeat.start()
        try:
            return self._outcome()
        finally:
            self.heartbeat.stop()

    def _outcome(self) -> int:
        try:
            return self._run()
        except NanLoss as exc:
            self.writer.emit("failed", error=str(exc), kind="nan", hint="lower training.learning_rate, or set training.max_grad_norm (e.g. 1.0)")
            return EXIT_FAILED
        except NocodetuneError as exc:
            self.writer.emit("failed", error=exc.message, kind=_kind(exc), hint=exc.hint, field=exc.field, file=exc.file, row=exc.row)
            return EXIT_FAILED
        except BaseException as exc:  # noqa: BLE001 - every failure must end in an event
            traceback.print_exc()
            if _is_oom(exc):
                self.writer.emit(
                    "failed",
                    error=f"out of memory: {exc}",
                    kind="oom",
                    hint="lower training.per_device_train_batch_size or training.max_length, raise gradient_accumulation_steps, turn on training.gradient_checkpointing, or use method: lora",
                )
            elif isinstance(exc, KeyboardInterrupt):
                self.writer.emit("failed", error="interrupted", kind="killed", hint="rerun the job to resume from its last checkpoint")
            else:
                self.writer.emit("failed", error=f"{type(exc).__name__}: {exc}", kind="error", hint="see logs/run-<n>.log for the traceback")
            return EXIT_FAILED

    def _run(self) -> int:
        from nocodetune.training.trainer_setup import train_job

        job = load_job(self.paths)
        preflight(job)
        self.message("reading data", "mapping dataset rows to training examples")
        fmt, train, evals = load_examples(job, self.paths)
        check_objective(job.config.objective, fmt)
        if not train:
            raise DataError("no training examples left after the eval split", field="training.eval_split", hint="add rows or lower training.eval_split")
        distributed.init_process_group()  # several processes: join the others (no-op for one)
        return train_job(self, job, fmt, train, evals)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m nocodetune.training JOB_DIR", file=sys.stderr)
        return 2
    apply_network_policy(Settings())
    # Library deprecation notices are for developers; a user reading the run log needs the run.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # Progress goes to events.jsonl; bars would only clutter the run log.
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    job_dir = Path(argv[0])
    if not job_dir.is_dir():
        print(f"job folder {job_dir} does not exist", file=sys.stderr)
        return 2
    return JobRun(job_dir).run()
