"""The heavy half of a run: load the model, tokenize, train with TRL's SFTTrainer, save.

Kept apart from runner.py so that everything before it (config, data and QLoRA checks)
runs without importing torch, transformers or TRL.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nocodetune.records.job import ResolvedJob
from nocodetune.settings import Settings
from nocodetune.training import distributed
from nocodetune.training.auto import Runtime, resolve_runtime
from nocodetune.training.callbacks import EventsCallback, perplexity
from nocodetune.training.evaluation import run_heldout
from nocodetune.data.examples import Example
from nocodetune.modeling.assemble import Assembled
from nocodetune.records.weights import AppliedLayer, write_weights
from nocodetune.training.models import apply_lora, load_start
from nocodetune.training.outputs import guard_checkpoint_saves, last_complete_checkpoint, plot_loss, save_atomically, write_json, write_model_card, write_samples
from nocodetune.training.tokenize import MASK_SCHEME, cache_key, load_or_tokenize, tokenizer_fingerprint

if TYPE_CHECKING:
    from nocodetune.training.runner import JobRun


def sft_config(job: ResolvedJob, rt: Runtime, checkpoints: Path, has_eval: bool) -> Any:
    """SFTConfig from the job config. TRL's own defaults (bf16 on, gradient checkpointing on) are overridden."""
    from trl import SFTConfig

    t = job.config.training
    eval_strategy = ("steps" if t.eval_steps else "epoch") if has_eval else "no"
    return SFTConfig(
        output_dir=str(checkpoints),
        learning_rate=t.learning_rate,
        num_train_epochs=t.num_train_epochs,
        max_steps=t.max_steps,
        per_device_train_batch_size=t.per_device_train_batch_size,
        per_device_eval_batch_size=t.per_device_eval_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_ratio,
        lr_scheduler_type=t.lr_scheduler_type,
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        optim=t.optim,
        seed=t.seed,
        data_seed=t.seed,
        max_length=t.max_length,
        packing=rt.packing,
        padding_free=rt.padding_free,
        train_sampling_strategy="group_by_length" if rt.group_by_length else "random",
        length_column_name="length",
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps,
        save_strategy="steps" if t.save_steps else "epoch",
        save_steps=t.save_steps or 500,
        save_total_limit=t.save_total_limit,
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=rt.bf16,
        fp16=rt.fp16,
        use_cpu=rt.device == "cpu",
        include_num_input_tokens_seen="non_padding",
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        remove_unused_columns=True,
        **distributed.trainer_args(job.config.resources.strategy, job.config.resources.deepspeed_stage),
    )


def sft_trainer_class(rt: Runtime) -> type:
    """SFTTrainer, with the model's own loss on CPU.

    TRL computes the loss through a chunked fused LM head that also yields per-token
    entropy and top-1 accuracy (logged metrics). On a CPU that costs ~25% of every step
    (measured: 3.45 s vs 2.75 s for a batch of 8x100 on SmolLM2-135M + LoRA); the loss
    value is the same token mean, so CPU runs use `Trainer.compute_loss` instead.
    """
    from transformers import Trainer
    from trl import SFTTrainer

    if rt.device != "cpu":
        return guard_checkpoint_saves(SFTTrainer)

    class PlainLossSFTTrainer(SFTTrainer):
        def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None) -> Any:
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    return guard_checkpoint_saves(PlainLossSFTTrainer)


def _heldout(run: "JobRun", job: ResolvedJob, model: Any, tokenizer: Any, evals: list[Example], stage: str) -> dict[str, Any]:
    ev, out = job.config.evaluation, job.config.output
    limit = ev.heldout_max_examples if ev.heldout_metric != "none" else out.num_samples
    if not evals or limit == 0:
        return {"score": None, "items": []}
    run.message("evaluating", f"generating answers for {min(limit, len(evals))} held-out prompts ({stage} training)")
    max_new = max(ev.max_new_tokens, out.sample_max_new_tokens) if ev.heldout_metric == "none" else ev.max_new_tokens
    merged = hasattr(model, "merge_adapter") and not getattr(model, "is_loaded_in_4bit", False)
    if merged:
        model.merge_adapter()  # LoRA folded into the weights: generation runs at base-model speed
    try:
        def progress(done: int, total: int) -> None:
            if done < total:
                run.message("evaluating", f"{stage} training: {done} of {total} held-out answers generated")

        return run_heldout(model, tokenizer, evals, metric=ev.heldout_metric, limit=limit, max_new_tokens=max_new, on_progress=progress)
    finally:
        if merged:
            model.unmerge_adapter()


def train_job(run: "JobRun", job: ResolvedJob, fmt: str, train: list[Example], evals: list[Example]) -> int:
    import torch

    from nocodetune.training.runner import EXIT_CANCELLED, EXIT_OK, NanLoss

    paths, cfg, settings = run.paths, job.config, Settings()
    rt = resolve_runtime(cfg)
    torch.manual_seed(cfg.training.seed)

    run.message("loading model", f"loading {cfg.model.source if not job.lineage.parent else 'parent ' + str(job.lineage.parent)} ({rt.dtype}, {rt.device})")
    with distributed.main_first():  # several processes: rank 0 fills the converted-model cache, the others read it
        start = load_start(job, paths, dtype=rt.dtype, attn=rt.attn_implementation)
    model, tokenizer = start.model, start.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.method in ("lora", "qlora"):
        model = apply_lora(model, job)

    run.message("tokenizing", f"tokenizing {len(train)} train and {len(evals)} eval examples ({fmt})")
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
    with distributed.main_first():  # several processes: rank 0 fills the cache, the others read it
        data, cached = load_or_tokenize(
            splits, tokenizer, max_length=cfg.training.max_length, completion_only_loss=cfg.training.completion_only_loss,
            key=key, cache_root=Path(settings.cache_dir) / "tokenized",
        )

    before_file = paths.outputs / ".heldout_before.json"
    paths.outputs.mkdir(parents=True, exist_ok=True)
    if before_file.is_file():  # a resumed run keeps the score of the untouched model
        import json

        before = json.loads(before_file.read_text())
    elif distributed.is_main():  # samples and scores are rank 0's
        before = _heldout(run, job, model, tokenizer, evals, "before")
        write_json(before_file, before)
    else:
        before = {"score": None, "items": []}

    resume = last_complete_checkpoint(paths.checkpoints)  # never half a checkpoint (killed or disk full mid-save)
    if resume and (note := distributed.resume_note(resume, cfg)):
        run.message("resuming", note)
    started = {
        "num_train_examples": len(data["train"]),
        "num_eval_examples": len(data["eval"]) if "eval" in data else 0,
        "method": cfg.method,
        "resumed_from": resume,
        "format": fmt,
        "runtime": rt.model_dump(),
        "tokenization_cached": cached,
        "world_size": distributed.world_size(),
        "workers": distributed.workers(),
    }
    callback = EventsCallback(
        run.writer, run.flags, started, paths.checkpoints, run.heartbeat,
        stop_check=lambda: distributed.agree(run.flags.cancel or distributed.stop_requested(paths)),
    )
    trainer = sft_trainer_class(rt)(
        model=model,
        args=sft_config(job, rt, paths.checkpoints, "eval" in data),
        train_dataset=data["train"],
        eval_dataset=data.get("eval"),
        processing_class=tokenizer,
        callbacks=[callback],
    )
    t_train = time.time()
    run.training = True
    try:
        if resume and _completed(resume):
            result = _reload_completed(trainer, resume, callback)
        else:
            result = trainer.train(resume_from_checkpoint=resume)
    finally:
        run.training = False
    train_seconds = time.time() - t_train
    if run.flags.nan_step is not None:
        raise NanLoss(f"the loss became NaN/inf at step {run.flags.nan_step}")
    state = trainer.state
    if run.flags.cancel:
        ckpt = paths.checkpoints / f"checkpoint-{state.global_step}"
        run.writer.emit(run.stop_event(), step=state.global_step, checkpoint=str(ckpt) if ckpt.is_dir() else None)
        return EXIT_CANCELLED

    eval_loss = next((h["eval_loss"] for h in reversed(state.log_history) if "eval_loss" in h and h.get("step") == state.global_step), None)
    if "eval" in data and eval_loss is None:
        run.message("evaluating", "computing eval loss")
        eval_loss = trainer.evaluate().get("eval_loss")
    if distributed.sharded(cfg.resources.strategy):
        final = _save_sharded(job, paths, trainer, tokenizer)  # every rank holds part of the weights
    if not distributed.is_main():
        return EXIT_OK  # rank 0 samples, saves and reports
    after = _heldout(run, job, trainer.model, tokenizer, evals, "after")
    for stage, items in (("before", before["items"]), ("after", after["items"])):
        for item in items[: cfg.output.num_samples]:
            run.writer.emit("sample", stage=stage, **item)

    if not distributed.sharded(cfg.resources.strategy):
        run.message("saving", "saving the trained model")
        final = _save_final(job, paths, trainer.model, tokenizer, start)
    trained = "train_runtime" in result.metrics  # False when a finished checkpoint was only reloaded
    new_tokens = int(state.num_input_tokens_seen or 0) - callback.tokens_at_start
    tps = new_tokens / train_seconds if trained and train_seconds > 0 else None
    metrics = _metrics(job, rt, start, result, state, eval_loss, before, after, train_seconds, run.t0, started, tps)
    write_json(paths.metrics_json, metrics)
    n = cfg.output.num_samples
    write_samples(paths.samples_jsonl, before["items"][:n], after["items"][:n])
    plot_loss(paths.loss_png, callback.history)
    write_model_card(paths.model_card, job, metrics, final, start.description)
    run.writer.emit("finished", metrics=metrics, model_path=str(final))
    return EXIT_OK


def _completed(checkpoint: str) -> bool:
    """Whether a checkpoint is the last step of its run (then there is nothing left to train)."""
    import json

    state = json.loads((Path(checkpoint) / "trainer_state.json").read_text(encoding="utf-8"))
    return state.get("max_steps", 0) > 0 and state.get("global_step", 0) >= state["max_steps"]


def _reload_completed(trainer: Any, checkpoint: str, callback: EventsCallback) -> Any:
    """A rerun after training ended but before outputs were saved: load the final checkpoint, train nothing.

    (Trainer.train would otherwise run one step past max_steps when resuming from the last one.)
    """
    from transformers import TrainerState
    from transformers.trainer_utils import TrainOutput

    trainer._load_from_checkpoint(checkpoint)
    trainer.state = TrainerState.load_from_json(str(Path(checkpoint) / "trainer_state.json"))
    state = trainer.state
    callback.writer.emit("started", pid=os.getpid(), total_steps=state.max_steps, **callback.started_fields)
    losses = [h["loss"] for h in state.log_history if "loss" in h]
    train_loss = next((h["train_loss"] for h in state.log_history if "train_loss" in h), sum(losses) / len(losses) if losses else None)
    return TrainOutput(state.global_step, train_loss, {"train_loss": train_loss})


def _save_sharded(job: ResolvedJob, paths: Any, trainer: Any, tokenizer: Any) -> Path:
    """FSDP / DeepSpeed ZeRO: every rank calls the Trainer's save, which gathers the shards (no weights record yet)."""
    target = paths.model_dir if job.config.method == "full" else paths.adapter_dir
    trainer.save_model(str(target))
    if distributed.is_main():
        tokenizer.save_pretrained(str(target))
    return target


def _save_final(job: ResolvedJob, paths: Any, model: Any, tokenizer: Any, start: Assembled) -> Path:
    """Save the adapter (LoRA) or the model (full) with its weights record; the merged model too when asked.

    The adapter's config names its base by public identity (not this machine's cache
    path); the weights record adds the base's hash and every layer merged under it.
    """
    from nocodetune.modeling.assemble import adapter_layer, name_base_in_adapter_config

    if job.config.method == "full":
        record = start.weights_record(job.name, AppliedLayer(job=job.name, kind="model"))
        return save_atomically(paths.model_dir, model, tokenizer, before_rename=lambda folder: write_weights(folder, record))

    def finish_adapter(folder: Path) -> None:
        name_base_in_adapter_config(folder, start.base.name)
        write_weights(folder, start.weights_record(job.name, adapter_layer(job.name, folder)))

    adapter = save_atomically(paths.adapter_dir, model, tokenizer, before_rename=finish_adapter)
    if job.config.output.merge_adapter:
        record = start.weights_record(job.name, adapter_layer(job.name, adapter))
        save_atomically(paths.merged_dir, model.merge_and_unload(), tokenizer, before_rename=lambda folder: write_weights(folder, record))
    return adapter


def _metrics(job: ResolvedJob, rt: Runtime, start: Assembled, result: Any, state: Any, eval_loss: float | None,
             before: dict[str, Any], after: dict[str, Any], train_seconds: float, t0: float, started: dict[str, Any],
             tps: float | None) -> dict[str, Any]:
    train_loss = result.metrics.get("train_loss")
    tokens = int(state.num_input_tokens_seen or 0)
    return {
        "method": job.config.method,
        "model": start.base.name,
        "train_loss": train_loss,
        "eval_loss": eval_loss,
        "perplexity": perplexity(eval_loss) if eval_loss is not None else None,
        "tokens_seen": tokens,
        "global_step": state.global_step,
        "epochs": state.epoch,
        "train_runtime_seconds": round(train_seconds, 2),
        "wall_time_seconds": round(time.time() - t0, 2),
        "tokens_per_second": round(tps, 1) if tps else None,  # every rank's tokens
        "world_size": started["world_size"],
        "num_train_examples": started["num_train_examples"],
        "num_eval_examples": started["num_eval_examples"],
        "heldout_metric": job.config.evaluation.heldout_metric,
        "heldout_score_before": before.get("score"),
        "heldout_score_after": after.get("score"),
        "resumed_from": started["resumed_from"],
        "tokenization_cached": started["tokenization_cached"],
        "runtime": rt.model_dump(),
        "data_sha256": {f"{d.name}@{d.version}": d.sha256 for d in job.datasets},
        "lineage": {"parent": job.lineage.parent, "parent_chain": job.lineage.parent_chain, "started_from": start.weights_record(None).model_dump(mode="json")},
        "history": [h for h in state.log_history if "loss" in h or "eval_loss" in h],
    }
