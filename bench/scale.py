"""Scale-out overhead: the same job on 1 local process, 2 local processes (torchrun, gloo) and the Ray executor.

Each run trains the same LoRA job (default: the embedded SmolLM2-135M, the demo ISO-date
task, max_length 128) for the same number of optimizer steps with the same global batch
(1 × 8, 2 × 4, Ray 2 workers × 4 on a local two-node cluster). Reported per run: training
tokens/s over all ranks (metrics.json), the training time, and the wall time from
`job run` to the `finished` event (start-up included); ratios are against the 1-process
run of the same invocation. On a 2-core CPU no speed-up is expected: the figures show
what the extra processes and Ray cost.

Runs inside a private network namespace (re-executes itself under `unshare -n`, as root),
because torch.distributed and Ray open listening sockets and Ray probes outside
addresses on start.

    python bench/scale.py                 # 1 process, 2 processes, Ray (2 nodes)
    python bench/scale.py --steps 16 --no-ray

Last line: ratio_2proc=<tokens/s ratio> ratio_ray=<tokens/s ratio>
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NETNS_FLAG = "NOCODETUNE_BENCH_NETNS"


def in_private_netns() -> bool:
    return os.environ.get(NETNS_FLAG) == "1" and [n for _, n in socket.if_nameindex()] == ["lo"]


def reexec_in_netns() -> int:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        print("bench/scale.py needs root and `unshare` to run in a private network namespace", file=sys.stderr)
        return 2
    args = " ".join(f"'{a}'" for a in sys.argv[1:])
    inner = f"ip link set lo up && exec {sys.executable} {Path(__file__).resolve()} {args}"
    env = dict(os.environ, **{NETNS_FLAG: "1"}, PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run(["unshare", "-n", "--", "sh", "-c", inner], env=env, check=False).returncode


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_ray(env: dict[str, str]) -> str:
    ray = str(Path(sys.executable).with_name("ray"))
    port, dashboard = _free_port(), _free_port()
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    subprocess.run([ray, "start", "--head", "--port", str(port), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
                    "--include-dashboard", "true", *common], env=env, check=True, capture_output=True)
    subprocess.run([ray, "start", "--address", f"127.0.0.1:{port}", *common[:4]], env=env, check=True, capture_output=True)
    return f"http://127.0.0.1:{dashboard}"


def stop_ray(env: dict[str, str]) -> None:
    subprocess.run([str(Path(sys.executable).with_name("ray")), "stop", "--force"], env=env, capture_output=True, check=False)


def run_case(ws: object, name: str, resources: dict[str, object], batch: int, args: argparse.Namespace, threads: int | None = None) -> dict[str, object]:
    from nocodetune.jobs.create import create_job
    from nocodetune.jobs.service import JobService
    from nocodetune.jobs.spec import JobSpec
    from nocodetune.records.events import read_events

    overrides = {
        "model": {"source": args.model},
        "resources": resources,
        "training": {"max_steps": args.steps, "per_device_train_batch_size": batch, "learning_rate": 2e-4, "max_length": 128,
                     "logging_steps": max(1, args.steps // 4), "save_steps": 10**6, "eval_split": 0.0, "group_by_length": False, "seed": args.seed},
        "output": {"num_samples": 0},
    }
    create_job(ws, JobSpec(name=name, base="lora_train", dataset="demo", overrides=overrides))  # type: ignore[arg-type]
    saved = os.environ.get("OMP_NUM_THREADS")
    if threads:
        os.environ["OMP_NUM_THREADS"] = str(threads)  # the training process's torch threads (torchrun and Ray set 1 per worker)
    t0 = time.time()
    try:
        status = JobService(ws).run_foreground(name)  # type: ignore[arg-type]
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved
    paths = ws.job(name)  # type: ignore[attr-defined]
    if status != "succeeded":
        tail = paths.run_log(1).read_text(errors="replace")[-3000:] if paths.run_log(1).exists() else ""
        raise SystemExit(f"{name} ended {status}\n{tail}")
    metrics = json.loads(paths.metrics_json.read_text())
    events, _ = read_events(paths.events)
    finished = next(e.time for e in events if e.type == "finished")
    started = next(e.time for e in events if e.type == "started")
    return {
        "case": name, "world_size": metrics["world_size"], "tokens_per_second": metrics["tokens_per_second"],
        "train_seconds": metrics["train_runtime_seconds"], "tokens": metrics["tokens_seen"],
        "startup_seconds": round(started - t0, 1), "wall_seconds": round(finished - t0, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="default", help="model.source (default: the embedded SmolLM2-135M-Instruct)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray executor case")
    parser.add_argument("--no-one-thread", action="store_true", help="skip the 1-process case with OMP_NUM_THREADS=1 (what each worker of the other cases gets)")
    args = parser.parse_args()
    if not in_private_netns():
        return reexec_in_netns()

    from nocodetune.data.store import DatasetStore
    from nocodetune.jobs.bootstrap import init_workspace
    from nocodetune.settings import apply_network_policy
    from nocodetune.workspace import Workspace

    apply_network_policy()
    tmp = Path(tempfile.mkdtemp(prefix="nocodetune-scale-"))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    os.environ.update(env)
    try:
        init_workspace(tmp / "ws")
        ws = Workspace(tmp / "ws")
        DatasetStore(ws).add(ROOT / "src" / "nocodetune" / "assets" / "demo" / "demo_dataset.jsonl", "demo")
        rows = [run_case(ws, "one_process", {"num_processes": 1}, 8, args)]
        if not args.no_one_thread:
            rows.append(run_case(ws, "one_proc_1thr", {"num_processes": 1}, 8, args, threads=1))
        rows.append(run_case(ws, "two_processes", {"num_processes": 2}, 4, args))
        if not args.no_ray:
            address = start_ray(env)
            try:
                rows.append(run_case(ws, "ray_two_nodes", {"executor": "ray", "ray_address": address, "num_nodes": 2}, 4, args))
            finally:
                stop_ray(env)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    base = rows[0]["tokens_per_second"] or 1
    print(f"\nmodel={args.model} steps={args.steps} global_batch=8 max_length=128 load_avg={os.getloadavg()[0]:.1f}")
    print(f"{'case':<16}{'ranks':>6}{'tokens':>8}{'tok/s':>9}{'ratio':>7}{'train s':>9}{'start-up s':>11}{'wall s':>8}")
    for r in rows:
        print(f"{r['case']:<16}{r['world_size']:>6}{r['tokens']:>8}{r['tokens_per_second']:>9}{r['tokens_per_second'] / base:>7.2f}"
              f"{r['train_seconds']:>9}{r['startup_seconds']:>11}{r['wall_seconds']:>8}")
    ratios = {r["case"]: r["tokens_per_second"] / base for r in rows}  # type: ignore[operator]
    print(f"ratio_2proc={ratios['two_processes']:.2f} ratio_ray={ratios.get('ray_two_nodes', float('nan')):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
