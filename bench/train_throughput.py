"""Training throughput: NoCodeTune's training path vs the original padded-batch approach.

Same model, same variable-length instruction data, same LoRA settings, same number of
steps, in one process. NoCodeTune = SFTTrainer with the runtime's 'auto' choices (on CPU:
length-grouped batches, no packing; on a flash-attention GPU: padding-free packing).
Baseline = plain transformers `Trainer` + `DataCollatorForSeq2Seq` padding, random batches
(what the original NoCodeTune did). Reported: useful (non-pad) tokens/s, their ratio, and
the eval loss of both, computed the same way (token-mean over the same eval examples).

    python bench/train_throughput.py                      # embedded SmolLM2-135M, 24 steps
    python bench/train_throughput.py --model PATH --steps 10 --batch 8

Last line: ratio=<x> eval_loss=<nocodetune> baseline_eval_loss=<baseline>
"""

from __future__ import annotations

import argparse
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


def fresh_model(folder: Path, cfg: Any, dtype: str) -> Any:
    from nocodetune.records.job import ResolvedJob
    from nocodetune.training.models import _load_causal_lm, apply_lora

    model = _load_causal_lm(folder, dtype, "sdpa", False)
    return apply_lora(model, ResolvedJob(name="bench", created_at="", config=cfg))


def run_nocodetune(folder: Path, tokenizer: Any, cfg: Any, train: Any, out: Path) -> tuple[Any, float, int]:
    import torch

    from nocodetune.records.job import ResolvedJob
    from nocodetune.training.auto import resolve_runtime
    from nocodetune.training.trainer_setup import sft_config, sft_trainer_class

    rt = resolve_runtime(cfg)
    torch.manual_seed(cfg.training.seed)
    model = fresh_model(folder, cfg, rt.dtype)
    args = sft_config(ResolvedJob(name="bench", created_at="", config=cfg), rt, out, has_eval=False)
    args.save_strategy = "no"
    trainer = sft_trainer_class(rt)(model=model, args=args, train_dataset=train, processing_class=tokenizer)
    t = time.time()
    trainer.train()
    return trainer.model, time.time() - t, int(trainer.state.num_input_tokens_seen)


def run_baseline(folder: Path, tokenizer: Any, cfg: Any, train: Any, out: Path) -> tuple[Any, float, int]:
    import torch
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments

    torch.manual_seed(cfg.training.seed)
    model = fresh_model(folder, cfg, "float32")
    t_cfg = cfg.training
    args = TrainingArguments(
        output_dir=str(out), max_steps=t_cfg.max_steps, per_device_train_batch_size=t_cfg.per_device_train_batch_size,
        learning_rate=t_cfg.learning_rate, logging_steps=t_cfg.logging_steps, save_strategy="no", report_to="none",
        seed=t_cfg.seed, data_seed=t_cfg.seed, use_cpu=not torch.cuda.is_available(), include_num_input_tokens_seen="non_padding",
        disable_tqdm=True, remove_unused_columns=False,
    )
    collator = DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)
    trainer = Trainer(model=model, args=args, train_dataset=train.remove_columns(["length"]), data_collator=collator)
    t = time.time()
    trainer.train()
    return trainer.model, time.time() - t, int(trainer.state.num_input_tokens_seen)


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
    args = parser.parse_args()

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

    with tempfile.TemporaryDirectory() as tmp:
        results = {}
        for name, fn in (("nocodetune", run_nocodetune), ("baseline", run_baseline)):
            model, seconds, tokens = fn(folder, tokenizer, cfg, train, Path(tmp) / name)
            loss = eval_loss(model, evals)
            results[name] = (tokens / seconds, loss, seconds, tokens)
            print(f"{name:>10}: {tokens} useful tokens in {seconds:.1f}s = {tokens / seconds:.1f} tok/s, eval_loss={loss:.4f}", flush=True)
            del model
    ratio = results["nocodetune"][0] / results["baseline"][0]
    print(f"ratio={ratio:.2f} eval_loss={results['nocodetune'][1]:.4f} baseline_eval_loss={results['baseline'][1]:.4f}")


if __name__ == "__main__":
    main()
