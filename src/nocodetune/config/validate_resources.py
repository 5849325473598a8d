"""Where a job trains, on how many processes, and whether that can work: the resource plan and its checks.

`plan_resources` turns the `resources` section ('auto', unset executor) into numbers for
this machine; the job service launches from the same plan that validate checked.
`check_resources` adds to a `ValidationReport`: the plan, the batch split across ranks,
the per-rank memory estimate, strategies that need a GPU, and for a Ray job whether the
cluster answers and sees the workspace at the same path (a tiny Ray job, a few seconds).

Nothing here imports torch or ray at module level; GPUs are counted with nvidia-smi.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from nocodetune.records.checkpoints import checkpoint_step, checkpoint_world_size, latest_checkpoint, resume_world_message
from nocodetune.records.schema import JobConfig
from nocodetune.settings import Settings, get_settings

if TYPE_CHECKING:
    from nocodetune.config.validate import ValidationReport
    from nocodetune.records.job import ResolvedJob

RAY_ANSWER_TIMEOUT_S = 5.0  # a Ray address that answers nothing is an error after this, not a hang
RAY_PROBE_TIMEOUT_S = 90.0  # the shared-storage probe job (submission + one task per node)
PROBE_MARK = "NOCODETUNE_RAY_PROBE "


def visible_gpus() -> list[str]:
    """GPU ids this process may use, without importing torch (unless it already is)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [v.strip() for v in visible.split(",") if v.strip() and v.strip() != "-1"]
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        try:
            return [str(i) for i in range(torch.cuda.device_count())]
        except Exception:  # a broken CUDA install means no GPUs, not a crash
            return []
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(ln for ln in out.splitlines() if ln.startswith("GPU "))]


class ResourcePlan(BaseModel):
    """The `resources` section resolved for this machine (what the job service launches)."""

    executor: Literal["local", "ray"]
    ray_address: str | None = None
    num_nodes: int
    num_processes: int  # per node
    world_size: int
    strategy: Literal["ddp", "fsdp", "deepspeed"]
    deepspeed_stage: int
    device: Literal["cpu", "cuda", "cluster"]  # "cluster": Ray decides on its nodes

    def local_slots(self) -> int:
        """Slots this job takes on this machine: one per local process, none when it runs on Ray."""
        return 0 if self.executor == "ray" else self.num_processes


def plan_resources(config: JobConfig, *, gpus: list[str] | None = None, settings: Settings | None = None) -> ResourcePlan:
    """The resource plan: 'auto' processes = one per visible GPU (1 on a CPU; 1 per node on Ray)."""
    res = config.resources
    settings = settings or get_settings()
    executor = res.executor or settings.executor
    if executor == "ray":
        procs = 1 if res.num_processes == "auto" else int(res.num_processes)
        device: Literal["cpu", "cuda", "cluster"] = "cluster"
    else:
        gpus = visible_gpus() if gpus is None else gpus
        procs = (len(gpus) or 1) if res.num_processes == "auto" else int(res.num_processes)
        device = "cuda" if gpus else "cpu"
    return ResourcePlan(
        executor=executor,
        ray_address=(res.ray_address or settings.ray_address) if executor == "ray" else None,
        num_nodes=res.num_nodes,
        num_processes=procs,
        world_size=procs * res.num_nodes,
        strategy="ddp" if res.strategy == "auto" else res.strategy,
        deepspeed_stage=res.deepspeed_stage,
        device=device,
    )


# -- the checks -----------------------------------------------------------------------


def check_resources(
    resolved: "ResolvedJob",
    report: "ValidationReport",
    *,
    workspace: Path | str | None = None,
    job_dir: Path | None = None,
    gpus: list[str] | None = None,
    probe_ray: bool = True,
) -> ResourcePlan | None:
    """Check the `resources` section against this machine (or the Ray cluster); add the plan to report.stats.

    Call it after the data checks (it reads `train_rows`/`eval_rows` from the stats to
    check how the batches split across ranks, and recounts the steps per rank).
    """
    config = resolved.config
    try:
        plan = plan_resources(config, gpus=gpus)
    except ValueError as exc:
        report.error(str(exc), field="resources")
        return None
    t = config.training
    global_batch = t.per_device_train_batch_size * t.gradient_accumulation_steps * plan.world_size
    report.stats["resources"] = {**plan.model_dump(), "global_batch_size": global_batch}

    if plan.executor == "local":
        _check_local(plan, report)
    else:
        _check_ray(plan, report, _workspace_root(workspace, job_dir), probe=probe_ray)
    _check_strategy(plan, config, report)
    _check_split(plan, config, report)
    _check_memory_per_rank(plan, config, report)
    if job_dir is not None:
        _check_resume_world(plan, config, Path(job_dir), report)
    return plan


def _workspace_root(workspace: Path | str | None, job_dir: Path | None) -> Path | None:
    if workspace is not None:
        return Path(workspace).resolve()
    if job_dir is not None:
        return Path(job_dir).resolve().parent.parent  # <workspace>/jobs/<job>
    env = os.environ.get("NOCODETUNE_WORKSPACE")
    return Path(env).resolve() if env else None


def _check_local(plan: ResourcePlan, report: "ValidationReport") -> None:
    if plan.num_nodes > 1:
        report.error(
            f"resources.num_nodes is {plan.num_nodes}, but the local executor runs on this machine only; "
            "set resources.executor: ray (with resources.ray_address or NOCODETUNE_RAY_ADDRESS) to train on several machines",
            field="resources.num_nodes",
        )
    gpus = plan.device == "cuda"
    if gpus:
        count = len(visible_gpus())
        if plan.num_processes > count:
            report.error(
                f"resources.num_processes is {plan.num_processes}, but this machine has {count} visible GPU(s): one process per GPU",
                field="resources.num_processes",
            )
    elif plan.num_processes > 1:
        cores = os.cpu_count() or 1
        if plan.num_processes > cores:
            report.warn(
                f"{plan.num_processes} processes on {cores} CPU cores: they share the cores and train slower than fewer processes",
                field="resources.num_processes",
            )


def _check_strategy(plan: ResourcePlan, config: JobConfig, report: "ValidationReport") -> None:
    if plan.strategy == "ddp":
        return
    if plan.device == "cpu":
        report.error(
            f"resources.strategy {plan.strategy} needs CUDA GPUs and this machine has none; use strategy auto (DDP), which runs on CPUs with gloo",
            field="resources.strategy",
        )
        return
    if plan.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        report.error("resources.strategy deepspeed needs the deepspeed package (pip install deepspeed)", field="resources.strategy")
    if config.method == "qlora":
        report.error(f"method qlora does not combine with resources.strategy {plan.strategy}; use strategy auto (DDP)", field="resources.strategy")


def _check_split(plan: ResourcePlan, config: JobConfig, report: "ValidationReport") -> None:
    """Batches across ranks: every rank needs data, and an uneven split repeats examples.

    (The step count per rank is validate's own, `data.tokens.training_steps` with the plan's world size.)
    """
    train_rows = report.stats.get("train_rows")
    if plan.world_size <= 1 or not isinstance(train_rows, int) or train_rows == 0:
        return
    world, batch = plan.world_size, config.training.per_device_train_batch_size
    if train_rows < world:
        report.error(
            f"only {train_rows} training rows for {world} processes: every process needs at least one row",
            field="resources.num_processes",
        )
        return
    step_rows = batch * world
    if train_rows % step_rows:
        repeated = step_rows - train_rows % step_rows
        report.warn(
            f"{train_rows} training rows are not a multiple of per_device_train_batch_size {batch} × {world} processes = {step_rows}: "
            f"the last step of each epoch repeats {repeated} example(s) so that every process gets a full batch",
            field="training.per_device_train_batch_size",
        )


def _sharded_model_bytes(plan: ResourcePlan, config: JobConfig, params: int) -> float | None:
    """Model, gradient and optimizer bytes per rank under FSDP / DeepSpeed ZeRO (None: not sharded)."""
    if plan.strategy == "ddp" or plan.world_size <= 1:
        return None
    w = plan.world_size
    weight = {"float32": 4, "auto": 4, "bfloat16": 2, "float16": 2}[config.model.dtype]
    if config.method != "full":  # adapters are small: only the frozen weights matter, and FSDP / ZeRO-3 shard them
        shards = plan.strategy == "fsdp" or plan.deepspeed_stage == 3
        return params * weight / (w if shards else 1)
    weights, grads, optim = params * weight, params * weight, params * 8
    if plan.strategy == "fsdp" or plan.deepspeed_stage == 3:
        return (weights + grads + optim) / w
    if plan.deepspeed_stage == 2:
        return weights + (grads + optim) / w
    return weights + grads + optim / w


def _check_memory_per_rank(plan: ResourcePlan, config: JobConfig, report: "ValidationReport") -> None:
    """The memory estimate is per rank (per process); on one CPU machine the ranks add up."""
    memory = report.stats.get("memory")
    if not isinstance(memory, dict) or "total_gb" not in memory:
        return
    gb = 1024**3
    params = report.stats.get("parameters")
    sharded = _sharded_model_bytes(plan, config, params) if isinstance(params, int) else None
    if sharded is not None:
        memory["model_gb"] = round(sharded / gb, 2)
        memory["total_gb"] = round((sharded + memory.get("activations_gb", 0) * gb) / gb, 2)
    memory["per_rank"] = True
    memory["ranks_per_machine"] = plan.num_processes
    if plan.executor == "local" and plan.device == "cpu" and plan.num_processes > 1:
        import psutil

        together = memory["total_gb"] * plan.num_processes
        memory["machine_total_gb"] = round(together, 2)
        ram = psutil.virtual_memory().total / gb
        if together > ram:
            report.warn(
                f"{plan.num_processes} processes × {memory['total_gb']} GB estimated each = {together:.1f} GB, more than this machine's {ram:.1f} GB of RAM",
                field="resources.num_processes",
            )


def _check_resume_world(plan: ResourcePlan, config: JobConfig, job_dir: Path, report: "ValidationReport") -> None:
    checkpoint = latest_checkpoint(job_dir / "outputs" / "checkpoints")
    if checkpoint is None:
        return
    before = checkpoint_world_size(checkpoint)
    if before == plan.world_size:
        return
    report.warn(resume_world_message(before, plan.world_size, checkpoint_step(checkpoint), config), field="resources.num_processes")


# -- Ray -------------------------------------------------------------------------------


def _check_ray(plan: ResourcePlan, report: "ValidationReport", workspace: Path | None, *, probe: bool) -> None:
    address = plan.ray_address
    if not address:
        report.error(
            "resources.executor is ray but no Ray address is set: set resources.ray_address or NOCODETUNE_RAY_ADDRESS to the cluster's "
            "job-submission address, e.g. http://HEAD:8265",
            field="resources.ray_address",
        )
        return
    no_ray = importlib.util.find_spec("ray") is None
    if no_ray:  # said together with what the address answers: both need fixing before the job can run
        report.error("resources.executor ray needs Ray on this machine: pip install 'nocodetune[ray]'", field="resources.executor")
    problem = ray_address_problem(address)  # plain HTTP: needs no Ray here
    if problem:
        report.error(problem, field="resources.ray_address")
    if no_ray or problem or not probe:
        return
    if workspace is None:
        report.error("cannot check that the Ray cluster sees the workspace: the workspace folder is unknown", field="resources.executor")
        return
    result = probe_ray_cluster(address, workspace)
    report.stats["ray"] = result
    if result.get("error"):
        report.error(result["error"], field=result.get("field", "resources.executor"))


def ray_address_problem(address: str, timeout: float = RAY_ANSWER_TIMEOUT_S) -> str | None:
    """Why `address` is not a Ray job-submission endpoint that answers (None when it is)."""
    if not address.startswith(("http://", "https://")):
        return (
            f"Ray address {address!r} is not a job-submission address: give the head node's dashboard address, e.g. http://HEAD:8265 "
            "(NoCodeTune submits jobs through Ray's job submission API, not the Ray Client)"
        )
    import httpx

    try:
        response = httpx.get(address.rstrip("/") + "/api/version", timeout=timeout)
    except httpx.HTTPError as exc:
        return f"no Ray cluster answers at {address} ({type(exc).__name__}: {exc or 'no answer'} within {timeout:g}s); start one (ray start --head) or fix the address"
    if response.status_code != 200:
        return f"{address} answered HTTP {response.status_code} to /api/version: it is not a Ray dashboard (job submission) address"
    return None


_PROBE_CODE = r"""
import importlib.util, json, sys, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
path, token = sys.argv[1], sys.argv[2]
ray.init()
def look(p, t):
    import importlib.util, socket
    try:
        with open(p, encoding="utf-8") as fh:
            seen = fh.read().strip() == t
    except OSError:
        seen = False
    return {"sees_workspace": seen, "has_nocodetune": importlib.util.find_spec("nocodetune") is not None, "host": socket.gethostname()}
task = ray.remote(num_cpus=0)(look)
nodes = [n for n in ray.nodes() if n.get("Alive")]
refs = [task.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote(path, token) for n in nodes]
out = [dict(r, node=n["NodeID"][:12], address=n.get("NodeManagerAddress")) for n, r in zip(nodes, ray.get(refs, timeout=60))]
res = ray.cluster_resources()
print("NOCODETUNE_RAY_PROBE " + json.dumps({"nodes": out, "cpus": res.get("CPU", 0), "gpus": res.get("GPU", 0)}), flush=True)
"""


def probe_ray_cluster(address: str, workspace: Path, timeout: float = RAY_PROBE_TIMEOUT_S) -> dict[str, Any]:
    """Run a tiny Ray job that reads a token file from the workspace on every alive node.

    Returns {"nodes": [{node, host, sees_workspace, has_nocodetune}], "cpus", "gpus"} and,
    when a node cannot see the workspace at the same path (or lacks nocodetune), "error".
    """
    from ray.job_submission import JobStatus, JobSubmissionClient

    probe_dir = workspace / ".tmp"
    probe_dir.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    token_file = probe_dir / f"ray-probe-{token[:8]}.txt"
    token_file.write_text(token + "\n", encoding="utf-8")
    client = JobSubmissionClient(address)
    job_id = None
    try:
        job_id = client.submit_job(
            entrypoint=f"python -c {shlex.quote(_PROBE_CODE)} {shlex.quote(str(token_file))} {token}",
            runtime_env={"env_vars": {"RAY_USAGE_STATS_ENABLED": "0"}},
            metadata={"nocodetune": "workspace probe"},
        )
        deadline = time.monotonic() + timeout
        status = client.get_job_status(job_id)
        while not status.is_terminal() and time.monotonic() < deadline:
            time.sleep(0.5)
            status = client.get_job_status(job_id)
        logs = client.get_job_logs(job_id)
        if not status.is_terminal():
            client.stop_job(job_id)
            return {"error": f"the Ray cluster at {address} did not run a tiny probe job within {timeout:g}s (status {status.value}); is it out of resources?"}
        line = next((ln for ln in reversed(logs.splitlines()) if ln.startswith(PROBE_MARK)), None)
        if status != JobStatus.SUCCEEDED or line is None:
            tail = " | ".join(logs.strip().splitlines()[-3:])
            return {"error": f"the Ray probe job failed on {address} ({status.value}): {tail}"}
        result: dict[str, Any] = json.loads(line[len(PROBE_MARK):])
    finally:
        token_file.unlink(missing_ok=True)
        if job_id is not None:
            try:
                client.delete_job(job_id)
            except Exception:  # noqa: BLE001 - a probe job left in Ray's list is harmless
                pass
    blind = [n for n in result["nodes"] if not n["sees_workspace"]]
    if blind:
        where = ", ".join(f"{n['host']} ({n['address']})" for n in blind)
        result["error"] = (
            f"Ray node(s) {where} cannot read the workspace at {workspace}: every node must see the workspace at the same path "
            "(a shared filesystem such as NFS mounted at the same place)"
        )
        result["field"] = "resources.executor"
    elif missing := [n for n in result["nodes"] if not n["has_nocodetune"]]:
        result["error"] = f"nocodetune is not installed on Ray node(s) {', '.join(n['host'] for n in missing)}: install the same version on every node"
        result["field"] = "resources.executor"
    return result
