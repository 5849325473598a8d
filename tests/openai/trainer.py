"""A stand-in for `python -m nocodetune.training JOB_DIR` for the OpenAI API tests.

It speaks the events contract like tests/jobs/fake_trainer.py, and also what the OpenAI
views read: `eval` events (valid_loss), checkpoint folders, `finished` metrics with
`tokens_seen`, and a stop request read on SIGTERM (pause ends `paused`, cancel
`cancelled`, as the real trainer does). With --adapter it leaves a real LoRA adapter in
outputs/adapter, so the job's model can be served and chatted with.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from nocodetune.records.events import EventWriter
from nocodetune.records.runs import read_stop
from nocodetune.workspace import JobPaths


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--sleep", type=float, default=0.05)
    parser.add_argument("--adapter", type=Path, help="a LoRA adapter folder copied to outputs/adapter at the end")
    args = parser.parse_args()

    paths = JobPaths(args.job_dir)
    events = EventWriter(paths.events, run=int(os.environ.get("NOCODETUNE_RUN", "1")))
    done = sorted(int(p.name.split("-")[1]) for p in paths.checkpoints.glob("checkpoint-*")) if paths.checkpoints.is_dir() else []
    step = done[-1] if done else 0
    state = {"stop": False}
    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))

    def checkpoint() -> Path:
        folder = paths.checkpoints / f"checkpoint-{step}"
        folder.mkdir(parents=True, exist_ok=True)
        events.emit("checkpoint", step=step, path=str(folder))
        return folder

    events.emit("started", pid=os.getpid(), total_steps=args.steps, num_train_examples=9, num_eval_examples=1, method="lora",
                objective="sft", world_size=1, resumed_from=str(paths.checkpoints / f"checkpoint-{step}") if step else None)
    events.emit("message", stage="training", text=f"training for {args.steps} steps")
    while step < args.steps:
        if state["stop"]:
            folder = checkpoint()
            stop = read_stop(paths)
            events.emit("paused" if stop is not None and stop.action == "pause" else "cancelled", step=step, checkpoint=str(folder))
            return 143
        time.sleep(args.sleep)
        step += 1
        events.emit("progress", step=step, total_steps=args.steps, epoch=step / args.steps, progress=step / args.steps)
        events.emit("log", step=step, total_steps=args.steps, epoch=step / args.steps, loss=2.0 / step, learning_rate=2e-4,
                    tokens_per_second=100.0, eta_seconds=(args.steps - step) * args.sleep, progress=step / args.steps)
    events.emit("eval", step=step, eval_loss=1.25, perplexity=3.49)
    checkpoint()
    adapter = paths.adapter_dir
    if args.adapter is not None:
        shutil.copytree(args.adapter, adapter, dirs_exist_ok=True)
    else:
        adapter.mkdir(parents=True, exist_ok=True)
        (adapter / "adapter_config.json").write_text("{}")
    events.emit("finished", metrics={"train_loss": 2.0 / step, "eval_loss": 1.25, "tokens_seen": 37 * step, "global_step": step}, model_path=str(adapter))
    return 0


if __name__ == "__main__":
    sys.exit(main())
