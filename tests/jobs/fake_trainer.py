"""A stand-in for `python -m nocodetune.training JOB_DIR` that speaks the same contract.

Writes `started`, a `message` per sampling stage, `progress` after every step, `log` every
`training.logging_steps` steps (from the job's resolved.json, else every step), with --eval
an `eval` at the end, `checkpoint`, then `finished` (exit 0), or `failed` (exit 1) with --fail, and on
SIGTERM a checkpoint + `cancelled` (exit 143). On a resumed run it starts from the last
checkpoint step it wrote, like the real trainer.

Options for tests that watch a run from outside: --hold-file makes the trainer wait after a
step while that file exists (writing `heartbeat` events, as the real trainer does during a
long step), so a test can look at a run frozen mid-way; --copy-model saves the job's
`model.source` folder as `outputs/model`, so a model server can serve the "trained" job.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from nocodetune.records.events import EventWriter  # noqa: E402


def _resolved(job_dir: Path) -> dict:
    try:
        return json.loads((job_dir / "resolved.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("job_dir", type=Path)
    parser.add_argument("--steps", type=int, default=None, help="default: training.max_steps of the job when > 0, else 4")
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--fail", action="store_true")
    parser.add_argument("--ignore-term", action="store_true", help="never stop on SIGTERM (tests the SIGKILL escalation)")
    parser.add_argument("--hold-file", type=Path, default=None, help="after a step (from --hold-from on), wait while this file exists")
    parser.add_argument("--hold-from", type=int, default=1, help="first step after which --hold-file holds the run")
    parser.add_argument("--heartbeat", type=float, default=0.5, help="seconds between heartbeat events while held")
    parser.add_argument("--eval", action="store_true", help="write an eval event at the end")
    parser.add_argument("--preference", action="store_true", help="log DPO preference figures (rewards_*) with the loss, and held-out preference accuracy in metrics.json")
    parser.add_argument("--copy-model", action="store_true", help="save the job's model.source folder as outputs/model")
    args = parser.parse_args()

    config = _resolved(args.job_dir).get("config", {})
    training = config.get("training", {})
    steps = args.steps if args.steps is not None else (training.get("max_steps") if (training.get("max_steps") or 0) > 0 else 4)
    logging_steps = max(1, int(training.get("logging_steps") or 1)) if args.steps is None else 1

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
    began = time.time()
    world = int(os.environ.get("NOCODETUNE_NUM_PROCESSES", "1"))
    events.emit("started", pid=os.getpid(), total_steps=steps, num_train_examples=8, num_eval_examples=2, method="lora",
                resumed_from=str(ckpt_file) if start else None, world_size=world,
                workers=[{"rank": r, "local_rank": r, "host": "here", "pid": os.getpid()} for r in range(world)])
    print(f"fake trainer run {run} from step {start}", flush=True)
    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')}", flush=True)
    if not start:
        events.emit("message", stage="evaluating", text="generating answers for 2 held-out prompts (before training)")
        events.emit("message", stage="evaluating", text="before training: 2 of 2 held-out answers generated")
        (args.job_dir / "outputs").mkdir(parents=True, exist_ok=True)
        (args.job_dir / "outputs" / ".heldout_before.json").write_text("{}")  # internal: never listed as an output
    while step < steps:
        if state["stop"]:
            ckpt_file.parent.mkdir(parents=True, exist_ok=True)
            ckpt_file.write_text(json.dumps({"step": step}))
            events.emit("checkpoint", step=step, path=str(ckpt_file))
            events.emit("cancelled", step=step, checkpoint=str(ckpt_file))
            return 143
        time.sleep(args.sleep)
        step += 1
        eta = (steps - step) * max(args.sleep, 1.0) * 10  # a long ETA, so a countdown between events is visible
        events.emit("progress", step=step, total_steps=steps, epoch=step / steps, progress=step / steps, eta_seconds=eta)
        if step % logging_steps == 0 or step == steps:
            preference = {"rewards_chosen": 0.1 * step, "rewards_rejected": -0.1 * step, "rewards_margins": 0.2 * step,
                          "rewards_accuracies": min(1.0, 0.5 + 0.1 * step)} if args.preference else {}
            events.emit("log", step=step, total_steps=steps, epoch=step / steps, loss=2.0 / step, learning_rate=1e-4 * (1 - step / (steps + 1)),
                        tokens_per_second=100.0, eta_seconds=eta, progress=step / steps, **preference)
        if args.fail and step >= steps // 2:
            events.emit("failed", error="loss became NaN at step %d" % step, kind="nan", hint="lower the learning rate")
            return 1
        held = time.monotonic()
        last_beat = held
        while args.hold_file is not None and step >= args.hold_from and args.hold_file.exists() and not state["stop"]:
            time.sleep(0.05)
            if time.monotonic() - last_beat >= args.heartbeat:
                last_beat = time.monotonic()
                events.emit("heartbeat", stage="training", step=step, elapsed_seconds=round(time.monotonic() - held, 1))
    if args.eval:
        events.emit("eval", step=step, eval_loss=2.5 / step, perplexity=2.7)
    outputs = args.job_dir / "outputs"
    model_source = config.get("model", {}).get("source")
    if args.copy_model and model_source and Path(model_source).is_dir():
        model = outputs / "model"
        shutil.copytree(model_source, model, dirs_exist_ok=True)
    else:
        model = outputs / "adapter"
        model.mkdir(parents=True, exist_ok=True)
        (model / "adapter_config.json").write_text("{}")
    metrics = {"train_loss": 2.0 / step, "resumed_from_step": start, "train_runtime_seconds": time.time() - began}
    if args.preference:  # the held-out preference figures a dpo/orpo run writes (fixed values a test can check)
        metrics.update(objective="dpo", heldout_preference_accuracy_before=0.5, heldout_preference_accuracy_after=0.75,
                       heldout_preference_margin_before=0.01, heldout_preference_margin_after=0.42, heldout_preference_pairs=4)
    (outputs / "metrics.json").write_text(json.dumps(metrics))
    (outputs / "samples.jsonl").write_text(json.dumps({"stage": "after", "prompt": "hi", "output": "hello"}) + "\n")
    events.emit("finished", metrics={"train_loss": 2.0 / step}, model_path=str(model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
