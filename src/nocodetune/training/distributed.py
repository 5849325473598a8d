"""Ranks and world size: one job trained by several processes, on one machine or a Ray cluster.

Every process runs the same `JobRun` code; this module is what differs between them:

- **rank helpers** used by `JobRun` and `train_job`: `rank()`, `world_size()`,
  `is_main()`; `event_writer` (only rank 0 writes events; other ranks get a writer that
  writes nothing), `main_first` (rank 0 tokenizes into the shared cache first),
  `agree` (every rank stops at the same step when any one was asked to), `workers`
  (who trains where, for the `started` event).
- **`local`**: `python -m nocodetune.training.distributed local --nproc-per-node N JOB_DIR`
  runs torchrun (`torch.distributed.run`) in this process with N workers. The rendezvous
  store is created here first, on a socket bound to 127.0.0.1, and torchrun's own store
  reuses it (TCPStore servers are shared per port within a process); gloo and NCCL are
  told to use the loopback interface. torch would otherwise listen on every interface.
- **`ray`**: `python -m nocodetune.training.distributed ray --num-nodes M --nproc-per-node P JOB_DIR`
  is the driver of a Ray job: Ray Train's TorchTrainer runs M×P workers, each running
  `JobRun` (rank 0 reports); the process group comes from Ray Train.

Whichever launcher ends, it makes sure the run has exactly one terminal event (a worker
killed before it could write one is reported by the launcher) and exits 0 / 1 / 143 like
a single training process.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from nocodetune.records.checkpoints import checkpoint_step, checkpoint_world_size, resume_world_message
from nocodetune.records.events import TERMINAL_TYPES, Event, EventWriter, read_events
from nocodetune.records.runs import read_stop, request_stop
from nocodetune.workspace import JobPaths

EXIT_OK, EXIT_FAILED, EXIT_CANCELLED = 0, 1, 143
LAUNCHER_ENV = "NOCODETUNE_LAUNCHER_PID"  # set for the workers of a local multi-process run


def rank() -> int:
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def world_size() -> int:
    return max(1, int(os.environ.get("WORLD_SIZE", "1") or 1))


def is_main() -> bool:
    return rank() == 0


class _NullWriter(EventWriter):
    """The events writer of ranks other than 0: the run has one voice."""

    def emit(self, type: Any, **fields: Any) -> Event:  # noqa: A002 - same signature as EventWriter.emit
        return Event(type=type, run=self.run, **fields)


def event_writer(path: Path, run: int | None) -> EventWriter:
    return EventWriter(path, run=run) if is_main() else _NullWriter(path, run=run)


def install_sigterm(handler: Callable[[int, Any], None], *, training: bool) -> None:
    """SIGTERM → `handler` where it can be installed (the main thread; Ray runs workers in a thread).

    Ranks other than 0 keep the default action (exit at once) until training starts: they
    have nothing to save, and a Python handler would wait for a blocked collective.
    """
    if threading.current_thread() is not threading.main_thread():
        return  # a Ray Train worker: the stop request file stops it (see `stop_requested`)
    if training or is_main() or world_size() == 1:
        signal.signal(signal.SIGTERM, handler)
    else:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def die_with_launcher() -> None:
    """A worker of a local run dies with its launcher (a SIGKILLed torchrun must not leave ranks training)."""
    launcher = os.environ.get(LAUNCHER_ENV)
    if not launcher or not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != int(launcher):
        os._exit(EXIT_CANCELLED)  # the launcher died before the request took effect


def init_process_group() -> None:
    """Join the other ranks (env:// from torchrun; Ray Train has already done it). No-op for one process."""
    if world_size() == 1:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank()))
    else:
        dist.init_process_group("gloo")


def _ready() -> bool:
    if world_size() == 1:
        return False
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if _ready():
        import torch.distributed as dist

        dist.barrier()


@contextmanager
def main_first() -> Iterator[None]:
    """Rank 0 runs the block first (e.g. fills the tokenization cache), then the others (cache hits)."""
    if not is_main():
        barrier()
    try:
        yield
    finally:
        if is_main():
            barrier()


def agree(flag: bool) -> bool:
    """True on every rank when it is true on any rank (one all-reduce; every rank must call it)."""
    if not _ready():
        return flag
    import torch
    import torch.distributed as dist

    device = torch.device("cuda", local_rank()) if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def stop_requested(paths: JobPaths) -> bool:
    """A cancel or pause request is on disk (how Ray workers, which get no SIGTERM, learn of it)."""
    return read_stop(paths) is not None


def workers() -> list[dict[str, Any]]:
    """[{rank, local_rank, host, pid, node}] of every rank (every rank must call it)."""
    me = {"rank": rank(), "local_rank": local_rank(), "host": socket.gethostname(), "pid": os.getpid(), "node": _ray_node()}
    if not _ready():
        return [me]
    import torch.distributed as dist

    everyone: list[Any] = [None] * world_size()
    dist.all_gather_object(everyone, me)
    return sorted(everyone, key=lambda w: w["rank"])


def _ray_node() -> str | None:
    if "ray" not in sys.modules:
        return None
    try:
        import ray

        return ray.get_runtime_context().get_node_id()[:12]
    except Exception:  # noqa: BLE001 - only a label
        return None


def resume_note(checkpoint: str | Path, config: Any) -> str | None:
    """What resuming `checkpoint` with this run's world size means, when it differs from the writer's."""
    before = checkpoint_world_size(Path(checkpoint))
    if before == world_size():
        return None
    return resume_world_message(before, world_size(), checkpoint_step(Path(checkpoint)), config)


def trainer_args(strategy: str, deepspeed_stage: int) -> dict[str, Any]:
    """TrainingArguments for several processes: DDP over gloo (CPU) or NCCL, FSDP or DeepSpeed ZeRO (GPU)."""
    if world_size() == 1:
        return {}
    import torch

    args: dict[str, Any] = {"ddp_backend": "nccl" if torch.cuda.is_available() else "gloo", "ddp_find_unused_parameters": False}
    if strategy == "fsdp":
        args.update(fsdp="full_shard auto_wrap", fsdp_config={"use_orig_params": True})
    elif strategy == "deepspeed":
        args["deepspeed"] = {
            "zero_optimization": {"stage": deepspeed_stage},
            "train_micro_batch_size_per_gpu": "auto",
            "gradient_accumulation_steps": "auto",
            "gradient_clipping": "auto",
            "bf16": {"enabled": "auto"},
            "fp16": {"enabled": "auto"},
        }
    return args


def sharded(strategy: str) -> bool:
    """Whether saving the final model needs every rank (the weights are spread over them)."""
    return world_size() > 1 and strategy in ("fsdp", "deepspeed")


# -- launchers ---------------------------------------------------------------------------


def _settle(job_dir: Path, problem: str | None) -> int:
    """Exit code of a multi-process run from its events; write the terminal event a dead rank 0 could not."""
    paths = JobPaths(job_dir)
    run = int(os.environ.get("NOCODETUNE_RUN", "0") or 0) or None
    events, _ = read_events(paths.events)
    mine = [e for e in events if run is None or e.run == run]
    last = next((e for e in reversed(mine) if e.type in TERMINAL_TYPES), None)
    if last is not None:
        return {"finished": EXIT_OK, "failed": EXIT_FAILED}.get(last.type, EXIT_CANCELLED)
    writer = EventWriter(paths.events, run=run)
    stop = read_stop(paths)
    if stop is not None:
        step = next((e.data().get("step") for e in reversed(mine) if e.type in ("progress", "log", "checkpoint")), 0)
        writer.emit("paused" if stop.action == "pause" else "cancelled", step=step, checkpoint=None)
        return EXIT_CANCELLED
    writer.emit("failed", error=f"a training process stopped without reporting: {problem or 'unknown cause'}", kind="killed",
                hint="see logs/run-<n>.log for every rank's output; resume to continue from the last checkpoint")
    return EXIT_FAILED


def bind_loopback_store() -> tuple[Any, int]:
    """A TCPStore server listening on 127.0.0.1 only (torch binds every interface when it creates one itself)."""
    from datetime import timedelta

    import torch.distributed as dist

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    store = dist.TCPStore(
        "127.0.0.1", port, is_master=True, multi_tenant=True, master_listen_fd=sock.fileno(), wait_for_workers=False, timeout=timedelta(minutes=30)
    )
    return (store, sock), port


def launch_local(nproc: int, job_dir: Path) -> int:
    """torchrun with `nproc` workers of `python -m nocodetune.training JOB_DIR` on this machine, loopback only."""
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    os.environ.setdefault("NCCL_SOCKET_IFNAME", "lo")
    os.environ[LAUNCHER_ENV] = str(os.getpid())
    os.environ["TORCHELASTIC_LOG_LINE_PREFIX_TEMPLATE"] = "[rank${rank}] "  # the run log says which rank wrote each line
    keep, port = bind_loopback_store()  # noqa: F841 - the store must live as long as the run
    from torch.distributed.run import main as torchrun

    run = os.environ.get("NOCODETUNE_RUN", "0")
    argv = [
        "--nnodes=1", f"--nproc-per-node={nproc}", "--rdzv-backend=static", "--master-addr=127.0.0.1", f"--master-port={port}",
        "--node-rank=0", "--max-restarts=0", "--monitor-interval=0.5", "--tee=3", f"--log-dir={JobPaths(job_dir).logs / f'run-{run}-ranks'}",
        "-m", "nocodetune.training", str(job_dir),
    ]
    problem = None
    try:
        torchrun(argv)
    except SystemExit as exc:
        problem = None if not exc.code else f"torchrun exited with {exc.code}"
    except BaseException as exc:  # noqa: BLE001 - ChildFailedError, SignalException: the events say the rest
        problem = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
    return _settle(job_dir, problem)


def _ray_worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: the same training code as any process (rank 0 writes events)."""
    from nocodetune.training.runner import JobRun

    code = JobRun(Path(config["job_dir"])).run()
    if code not in (EXIT_OK, EXIT_CANCELLED) and not is_main():
        raise RuntimeError(f"rank {rank()} failed (exit {code})")


def launch_ray(num_nodes: int, nproc: int, job_dir: Path) -> int:
    """Driver of a Ray job: TorchTrainer with num_nodes × nproc workers; a SIGTERM (Ray's stop) asks them to checkpoint."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    paths = JobPaths(job_dir.resolve())

    def on_term(_signum: int, _frame: Any) -> None:
        if read_stop(paths) is None:
            request_stop(paths, "cancel")  # `ray job stop` without nocodetune: still a cancel with a checkpoint

    signal.signal(signal.SIGTERM, on_term)
    ray.init()
    world = num_nodes * nproc
    use_gpu = ray.cluster_resources().get("GPU", 0) >= world
    strategy = "PACK" if num_nodes == 1 else ("STRICT_SPREAD" if nproc == 1 else "SPREAD")
    run = os.environ.get("NOCODETUNE_RUN", "0")
    trainer = TorchTrainer(
        _ray_worker,
        train_loop_config={"job_dir": str(paths.root)},
        scaling_config=ScalingConfig(num_workers=world, use_gpu=use_gpu, placement_strategy=strategy, resources_per_worker=None if use_gpu else {"CPU": 1}),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo", timeout_s=1800),
        run_config=RunConfig(name=f"run-{run}", storage_path=str(paths.logs / "ray"), failure_config=FailureConfig(max_failures=0)),
    )
    problem = None
    try:
        result = trainer.fit()
        problem = str(result.error) if result.error else None
    except Exception as exc:  # noqa: BLE001 - TrainingFailedError and friends: the events say the rest
        problem = f"{type(exc).__name__}: {exc}"
    print(f"Ray training ended: {problem or 'ok'}", flush=True)
    return _settle(paths.root, problem)


def main(argv: list[str] | None = None) -> int:
    from nocodetune.settings import apply_network_policy

    apply_network_policy()
    parser = argparse.ArgumentParser(prog="python -m nocodetune.training.distributed", description="Train one job folder on several processes.")
    sub = parser.add_subparsers(dest="launcher", required=True)
    local = sub.add_parser("local", help="torchrun on this machine (loopback only)")
    local.add_argument("--nproc-per-node", type=int, required=True)
    local.add_argument("job_dir", type=Path)
    on_ray = sub.add_parser("ray", help="driver of a Ray job (Ray Train TorchTrainer)")
    on_ray.add_argument("--num-nodes", type=int, required=True)
    on_ray.add_argument("--nproc-per-node", type=int, required=True)
    on_ray.add_argument("job_dir", type=Path)
    args = parser.parse_args(argv)
    if not JobPaths(args.job_dir).resolved_json.is_file():
        print(f"{args.job_dir} is not a job folder (no resolved.json)", file=sys.stderr)
        return 2
    if args.launcher == "local":
        return launch_local(args.nproc_per_node, args.job_dir.resolve())
    return launch_ray(args.num_nodes, args.nproc_per_node, args.job_dir.resolve())


if __name__ == "__main__":
    sys.exit(main())
