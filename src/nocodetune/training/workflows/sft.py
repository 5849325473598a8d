"""Supervised fine-tuning: learn the answers (TRL's SFTTrainer on our own tokens and masks).

Data: `data.tokens` turns every example into input_ids + labels (only assistant turns
trained), cached on disk (`training.tokenize`). Batches: without packing (on a CPU SDPA
attends over a whole packed row), random batches run as micro-batches of similar length,
each cut to its own longest example (`group_by_length`); on a GPU with flash-attention 2,
TRL's padding-free packing. Loss: every trained token weighs the same whatever batch it
lands in (`training.batching`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nocodetune.data.examples import Example
from nocodetune.modeling.assemble import Assembled
from nocodetune.records.job import ResolvedJob
from nocodetune.settings import Settings
from nocodetune.training.auto import Runtime
from nocodetune.training.batching import EqualTokenWeights, mean_trained_tokens
from nocodetune.training.models import apply_lora
from nocodetune.training.outputs import guard_checkpoint_saves
from nocodetune.training.tokenize import MASK_SCHEME, cache_key, load_or_tokenize, tokenizer_fingerprint


def prepare(job: ResolvedJob, tokenizer: Any, start: Assembled, train: list[Example], evals: list[Example]) -> tuple[dict[str, Any], bool]:
    """Tokenized train/eval datasets (input_ids, labels, length), from the cache when the same data was tokenized before."""
    cfg = job.config
    key = cache_key(
        data=[d.sha256 for d in job.datasets],
        dataset=cfg.dataset.model_dump(exclude={"ref"}),
        tokenizer=tokenizer_fingerprint(tokenizer),
        max_length=cfg.training.max_length,
        completion_only=cfg.training.completion_only_loss,
        split=(cfg.training.eval_split, cfg.training.seed),
        parents=[layer.model_dump() for layer in start.layers],
        masks=MASK_SCHEME,
    )
    splits = {"train": train, **({"eval": evals} if evals else {})}
    return load_or_tokenize(
        splits, tokenizer, max_length=cfg.training.max_length, completion_only_loss=cfg.training.completion_only_loss,
        key=key, cache_root=Path(Settings().cache_dir) / "tokenized",
    )


def sft_config(job: ResolvedJob, rt: Runtime, args: dict[str, Any]) -> Any:
    """SFTConfig: the shared arguments plus how SFT batches (TRL's own defaults such as bf16 on are overridden in `args`)."""
    from trl import SFTConfig

    return SFTConfig(
        **args,
        max_length=job.config.training.max_length,
        packing=rt.packing,
        padding_free=rt.padding_free,
        train_sampling_strategy="random",  # random batches; `EqualTokenWeights` runs each as length-sorted micro-batches
        length_column_name="length",
        remove_unused_columns=True,
    )


def sft_trainer_class(rt: Runtime) -> type:
    """SFTTrainer with equal token weights, clean checkpoint failures and (on CPU) the model's own loss.

    TRL computes the loss through a chunked fused LM head that also yields per-token
    entropy and top-1 accuracy (logged metrics). On a CPU that costs ~25% of every step
    (measured: 3.45 s vs 2.75 s for a batch of 8x100 on SmolLM2-135M + LoRA); the loss
    value is the same token sum over `num_items_in_batch`, so CPU runs use
    `Trainer.compute_loss` instead.
    """
    from transformers import Trainer
    from trl import SFTTrainer

    if rt.device != "cpu":

        class NocodetuneSFTTrainer(EqualTokenWeights, SFTTrainer):
            pass

        return guard_checkpoint_saves(NocodetuneSFTTrainer)

    class PlainLossSFTTrainer(EqualTokenWeights, SFTTrainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    return guard_checkpoint_saves(PlainLossSFTTrainer)


def tokens_per_step(job: ResolvedJob, train: Any, world_size: int) -> float:
    """Expected trained tokens of one optimizer step over all processes: the fixed loss divisor."""
    t = job.config.training
    return max(mean_trained_tokens(train["labels"]), 1e-6) * t.per_device_train_batch_size * t.gradient_accumulation_steps * world_size


def build_trainer(job: ResolvedJob, rt: Runtime, model: Any, tokenizer: Any, data: dict[str, Any], args: dict[str, Any], callbacks: list[Any]) -> Any:
    if job.config.method in ("lora", "qlora"):
        model = apply_lora(model, job)
    config = sft_config(job, rt, args)
    trainer = sft_trainer_class(rt)(
        model=model,
        args=config,
        train_dataset=data["train"],
        eval_dataset=data.get("eval"),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    trainer.tokens_per_step = tokens_per_step(job, data["train"], max(1, config.world_size))
    trainer.split_by_length = rt.group_by_length
    return trainer
