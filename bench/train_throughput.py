"""Training throughput: NoCodeTune's training path vs a padded-batch baseline and TRL's defaults.

Same model, same variable-length instruction data, same LoRA settings, same learning rate,
schedule and number of steps, in one process:

- NoCodeTune = the runtime's SFT workflow (`training.workflows.sft`) with its 'auto'
  choices (on CPU: random batches run as length-sorted micro-batches, every trained token
  weighted the same, no packing, fp32; on a flash-attention GPU: padding-free packing).
- baseline = plain transformers `Trainer` + `DataCollatorForSeq2Seq` padding, random
  batches (what the original NoCodeTune did), with the job's optimizer.
- TRL = `SFTTrainer` with TRL's own defaults (bf16, gradient checkpointing, random
  batches, its fused-LM-head loss) on the same examples as prompt/completion
  conversations, LoRA through `peft_config`.

Reported: useful (non-pad) tokens/s, the ratios, and the held-out loss of each, computed
the same way (token mean over the same eval examples, one example at a time).

    python bench/train_throughput.py                      # embedded SmolLM2-135M, 24 steps
    python bench/train_throughput.py --model PATH --steps 10 --batch 8

Last line: ratio=<x> eval_loss=<nocodetune> baseline_eval_loss=<baseline> trl_ratio=<x> trl_eval_loss=<trl>
(ratio and trl_ratio: NoCodeTune's tokens/s over the baseline's and over TRL's.)
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path
from typing import Any

WORDS = (
    "the model learns to answer questions about dates numbers names places weather cooking travel music "
    "history science books films sport health money work family friends city river mountain sea"
).split()


def make_examples(n: int, seed: int) -> list[dict[str, Any]]:
    """Instruction data with a wide spread of lengths (short Q&A up to long answers), like real SFT sets."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        q = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 30)))
        a_len = int(rng.paretovariate(1.2) * 8)  # long-tailed: most answers short, some long
        a = " ".join(rng.choice(WORDS) for _ in range(min(a_len, 200)))
        out.append({"messages": [{"role": "user", "content": f"Question {i}: {q}?"}, {"role": "assistant", "content": a or "yes"}]})
    return out


def job_config(args: argparse.Namespace) -> Any:
    from nocodetune.records.schema import JobConfig

    return JobConfig.model_validate(
        {
            "method": "lora",
            "model": {"source": args.model},
            "training": {
                "max_steps": args.steps, "per_device_train_batch_size": args.batch, "per_device_eval_batch_size": args.batch,
                "learning_rate": args.lr, "max_length": args.max_length, "logging_steps": max(1, args.steps // 4),
                "eval_split": 0.0, "save_steps": 10**6, "seed": args.seed,
            },
        }
    )


def eval_loss(model: Any, data: Any) -> float:
    """Token-mean loss over the eval set, one example at a time (no padding effects)."""
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in data:
            ids = torch.tensor([row["input_ids"]])
            labels = torch.tensor([row["labels"]])
            n = int((labels[:, 1:] != -100).sum())
            if n == 0:
                continue
            total += float(model(input_ids=ids, labels=labels).loss) * n
            count += n
    return total / count


def bench_job(cfg: Any) -> Any:
    from nocodetune.records.job import ResolvedJob

    return ResolvedJob(name="bench", created_at="", config=cfg)


def fresh_model(folder: Path, dtype: str = "float32") -> Any:
    from nocodetune.modeling.assemble import load_causal_lm

    return load_causal_lm(folder, dtype=dtype, attn="sdpa")


def run_nocodetune(folder: Path, tokenizer: Any, cfg: Any, train: Any, examples: list[dict[str, Any]], out: Path) -> tuple[Any, float, int]:
    import torch

    from nocodetune.training.auto import resolve_runtime
    from nocodetune.training.trainer_setup import training_args
    from nocodetune.training.workflows import sft

    job = bench_job(cfg)
    rt = resolve_runtime(cfg)
    torch.manual_seed(cfg.training.seed)
    args = {**training_args(job, rt, out, has_eval=False), "save_strategy": "no"}
    trainer = sft.build_trainer(job, rt, fresh_model(folder, rt.dtype), tokenizer, {"train": train}, args, callbacks=[])
    t = time.time()
    trainer.train()
    return trainer.model, time.time() - t, int(trainer.state.num_input_tokens_seen)


def run_baseline(folder: Path, tokenizer: Any, cfg: Any, train: Any, examples: list[dict[str, Any]], out: Path) -> tuple[Any, float, int]:
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from nocodetune.training.models import apply_lora

    torch.manual_seed(cfg.training.seed)
    model = apply_lora(fresh_model(folder), bench_job(cfg))
    t_cfg = cfg.training
    args = TrainingArguments(
        output_dir=str(out), max_steps=t_cfg.max_steps, per_device_train_batch_size=t_cfg.per_device_train_batch_size,
        learning_rate=t_cfg.learning_rate, logging_steps=t_cfg.logging_steps, save_strategy="no", report_to="none",
        seed=t_cfg.seed, data_seed=t_cfg.seed, use_cpu=not torch.cuda.is_available(), include_num_input_tokens_seen="non_padding",
        disable_tqdm=True, remove_unused_columns=False,
        optim=t_cfg.optim,  # the job's optimizer (transformers' default is the fused AdamW): only the batching differs
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=train.remove_columns(["length"]), data_collator=collator)
    t = time.time()
    trainer.train()
    return trainer.model, time.time() - t, int(trainer.state.num_input_tokens_seen)


def run_trl(folder: Path, tokenizer: Any, cfg: Any, train: Any, examples: list[dict[str, Any]], out: Path) -> tuple[Any, float, int]:
    """TRL's SFTTrainer as its documentation shows it: its defaults, the data as prompt/completion conversations.

    Only what defines the experiment is set (steps, batch, learning rate, max_length, seed,
    the LoRA adapter) and the token counter this benchmark reads; everything else is TRL's.
    """
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from nocodetune.training.models import lora_config

    torch.manual_seed(cfg.training.seed)
    t_cfg = cfg.training
    data = Dataset.from_list([{"prompt": e["messages"][:-1], "completion": e["messages"][-1:]} for e in examples])
    args = SFTConfig(
        output_dir=str(out), max_steps=t_cfg.max_steps, per_device_train_batch_size=t_cfg.per_device_train_batch_size,
        learning_rate=t_cfg.learning_rate, max_length=t_cfg.max_length, seed=t_cfg.seed, logging_steps=t_cfg.logging_steps,
        save_strategy="no", report_to="none", use_cpu=not torch.cuda.is_available(), include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
    )
    trainer = SFTTrainer(model=fresh_model(folder), args=args, train_dataset=data, processing_class=tokenizer, peft_config=lora_config(bench_job(cfg)))
    t = time.time()
    trainer.train()
    return trainer.model, time.time() - t, int(trainer.state.num_input_tokens_seen)


RUNS = {"nocodetune": run_nocodetune, "baseline": run_baseline, "trl": run_trl}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="default", help="'default' (embedded SmolLM2-135M), a model folder, or a .gguf")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--examples", type=int, default=600)
    parser.add_argument("--eval-examples", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", default="nocodetune,baseline,trl", help="which of nocodetune, baseline, trl to run (comma list)")
    args = parser.parse_args()
    runs = [r.strip() for r in args.runs.split(",") if r.strip()]
    unknown = [r for r in runs if r not in RUNS]
    if unknown:
        parser.error(f"unknown run(s) {', '.join(unknown)}; choose from {', '.join(RUNS)}")

    from nocodetune.settings import apply_network_policy

    apply_network_policy()
    from datasets import Dataset

    from nocodetune.model_source import load_tokenizer, materialize, resolve_model
    from nocodetune.data.tokens import tokenize_split

    cfg = job_config(args)
    resolved = resolve_model(cfg.model)
    folder = materialize(resolved)
    tokenizer = load_tokenizer(resolved)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    examples = make_examples(args.examples + args.eval_examples, args.seed)
    train = Dataset.from_dict(tokenize_split(examples[: args.examples], tokenizer, args.max_length, True)[0])
    evals = Dataset.from_dict(tokenize_split(examples[args.examples :], tokenizer, args.max_length, True)[0])
    lengths = train["length"]
    print(f"model={resolved.display_name} examples={len(train)} mean_len={sum(lengths) / len(lengths):.1f} max_len={max(lengths)} "
          f"steps={args.steps} batch={args.batch} max_length={args.max_length}")

    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name in runs:
            model, seconds, tokens = RUNS[name](folder, tokenizer, cfg, train, examples[: args.examples], Path(tmp) / name)
            loss = eval_loss(model, evals)
            results[name] = (tokens / seconds, loss, seconds, tokens)
            print(f"{name:>10}: {tokens} useful tokens in {seconds:.1f}s = {tokens / seconds:.1f} tok/s, eval_loss={loss:.4f} "
                  f"(load {os.getloadavg()[0]:.2f})", flush=True)
            del model
    line = []
    if "nocodetune" in results and "baseline" in results:
        line.append(f"ratio={results['nocodetune'][0] / results['baseline'][0]:.2f}")
    if "nocodetune" in results:
        line.append(f"eval_loss={results['nocodetune'][1]:.4f}")
    if "baseline" in results:
        line.append(f"baseline_eval_loss={results['baseline'][1]:.4f}")
    if "nocodetune" in results and "trl" in results:
        line.append(f"trl_ratio={results['nocodetune'][0] / results['trl'][0]:.2f}")
    if "trl" in results:
        line.append(f"trl_eval_loss={results['trl'][1]:.4f}")
    print(" ".join(line))

if __name__ == "__main__":
    main()
