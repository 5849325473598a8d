"""A stand-in for `python -m nocodetune.training JOB_DIR` that speaks the same contract.

Writes `started`, `log` per step, `checkpoint`, then `finished` (exit 0), or `failed`
(exit 1) with --fail, and on SIGTERM a checkpoint + `cancelled` (exit 143). On a resumed
run it starts from the last checkpoint step it wrote, like the real trainer.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from nocodetune.records.events import EventWriter  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--ignore-term", action="store_true", help="never stop on SIGTERM (tests the SIGKILL escalation)")
    args = parser.parse_args()

    run = int(os.environ.get("NOCODETUNE_RUN", "1"))
    events = EventWriter(args.job_dir / "logs" / "events.jsonl", run=run)
    ckpt_file = args.job_dir / "outputs" / "checkpoints" / "last.json"
    start = json.loads(ckpt_file.read_text())["step"] if ckpt_file.exists() else 0
    step = start
    state = {"stop": False}

    def on_term(_sig: int, _frame: object) -> None:
        if not args.ignore_term:
            state["stop"] = True

    signal.signal(signal.SIGTERM, on_term)
    world = int(os.environ.get("NOCODETUNE_NUM_PROCESSES", "1"))
    events.emit("started", pid=os.getpid(), total_steps=args.steps, num_train_examples=8, num_eval_examples=2, method="lora",
                resumed_from=str(ckpt_file) if start else None, world_size=world,
                workers=[{"rank": r, "local_rank": r, "host": "here", "pid": os.getpid()} for r in range(world)])
    print(f"fake trainer run {run} from step {start}", flush=True)
    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
    while step < args.steps:
        if state["stop"]:
            ckpt_file.parent.mkdir(parents=True, exist_ok=True)
            ckpt_file.write_text(json.dumps({"step": step}))
            events.emit("checkpoint", step=step, path=str(ckpt_file))
            events.emit("cancelled", step=step, checkpoint=str(ckpt_file))
            return 143
        time.sleep(args.sleep)
        step += 1
        events.emit("log", step=step, total_steps=args.steps, epoch=step / args.steps, loss=2.0 / step, learning_rate=1e-4,
                    tokens_per_second=100.0, eta_seconds=(args.steps - step) * args.sleep, progress=step / args.steps)
        if args.fail and step >= args.steps // 2:
            events.emit("failed", error="loss became NaN at step %d" % step, kind="nan", hint="lower the learning rate")
            return 1
    model = args.job_dir / "outputs" / "adapter"
    model.mkdir(parents=True, exist_ok=True)
    (model / "adapter_config.json").write_text("{}")
    (args.job_dir / "outputs" / "metrics.json").write_text(json.dumps({"train_loss": 2.0 / step, "resumed_from_step": start}))
    (args.job_dir / "outputs" / "samples.jsonl").write_text(json.dumps({"stage": "after", "prompt": "hi", "output": "hello"}) + "\n")
    events.emit("finished", metrics={"train_loss": 2.0 / step}, model_path=str(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
