"""The heavy half of a run, shared by every training method: load the start model, hold
out and score, train with the objective's workflow (`training.workflows`: sft, dpo,
orpo), save, report.

Kept apart from runner.py so that everything before it (config, data and QLoRA checks)
runs without importing torch, transformers or TRL.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nocodetune.errors import ConfigError
from nocodetune.records.job import ResolvedJob
from nocodetune.training import distributed
from nocodetune.training.auto import Runtime, resolve_runtime
from nocodetune.training.callbacks import EventsCallback, perplexity, preference_log_keys
from nocodetune.training.evaluation import preference_accuracy, run_heldout
from nocodetune.data.examples import Example
from nocodetune.modeling.assemble import Assembled
from nocodetune.records.io import read_json, write_json_atomic
from nocodetune.records.weights import AppliedLayer, write_weights
from nocodetune.training.models import load_start
from nocodetune.training.outputs import last_complete_checkpoint, plot_loss, save_atomically, write_model_card, write_samples
from nocodetune.training.reporting import report_to, tensorboard_callback

if TYPE_CHECKING:
    from nocodetune.training.runner import JobRun


def training_args(job: ResolvedJob, rt: Runtime, checkpoints: Path, has_eval: bool) -> dict[str, Any]:
    """TrainingArguments every workflow shares. TRL's own defaults (bf16 on, gradient checkpointing on) are overridden.

    Early stopping (`training.early_stopping_patience`) watches the eval loss and ends
    with the best model: transformers' EarlyStoppingCallback needs `metric_for_best_model`,
    and `load_best_model_at_end` needs a checkpoint at every evaluation, so with early
    stopping checkpoints follow the evaluations (save_steps = eval_steps, or per epoch).
    """
    t = job.config.training
    eval_strategy = ("steps" if t.eval_steps else "epoch") if has_eval else "no"
    save: dict[str, Any] = {"save_strategy": "steps" if t.save_steps else "epoch", "save_steps": t.save_steps or 500}
    if t.early_stopping_patience and has_eval:
        save = {"save_strategy": eval_strategy, "save_steps": t.eval_steps or 500,
                "load_best_model_at_end": True, "metric_for_best_model": "eval_loss", "greater_is_better": False}
    return dict(
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
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps,
        save_total_limit=t.save_total_limit,
        **save,
        gradient_checkpointing=t.gradient_checkpointing,
        bf16=rt.bf16,
        fp16=rt.fp16,
        use_cpu=rt.device == "cpu",
        include_num_input_tokens_seen="non_padding",
        report_to=report_to(job.config),
        disable_tqdm=True,
        dataloader_num_workers=0,
        **distributed.trainer_args(job.config.resources.strategy, job.config.resources.deepspeed_stage),
    )


def callbacks_for(job: ResolvedJob, paths: Any, events: EventsCallback) -> list[Any]:
    """Events always; early stopping and TensorBoard when the job asks for them."""
    from transformers import EarlyStoppingCallback

    out: list[Any] = [events]
    if job.config.training.early_stopping_patience:
        out.append(EarlyStoppingCallback(early_stopping_patience=job.config.training.early_stopping_patience))
    if "tensorboard" in job.config.training.report_to:
        out.append(tensorboard_callback(paths.logs / "tensorboard"))
    return out


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


def _preference_heldout(run: "JobRun", job: ResolvedJob, model: Any, tokenizer: Any, evals: list[Example], stage: str) -> dict[str, Any] | None:
    """Held-out preference accuracy of `model` (preference objectives only)."""
    if job.config.objective == "sft" or not evals:
        return None
    limit = job.config.evaluation.heldout_max_examples
    run.message("evaluating", f"scoring {min(limit, len(evals))} held-out preference pairs ({stage} training)")
    return preference_accuracy(model, tokenizer, evals, max_length=job.config.training.max_length, limit=limit)


def train_job(run: "JobRun", job: ResolvedJob, fmt: str, train: list[Example], evals: list[Example]) -> int:
    import torch

    from nocodetune.training import workflows
    from nocodetune.training.runner import EXIT_CANCELLED, EXIT_OK, NanLoss

    paths, cfg = run.paths, job.config
    if cfg.training.early_stopping_patience and not evals:
        raise ConfigError("early stopping watches the eval loss, and this job holds out no rows", field="training.early_stopping_patience",
                          hint="set training.eval_split above 0, or remove training.early_stopping_patience")
    rt = resolve_runtime(cfg)
    torch.manual_seed(cfg.training.seed)
    workflow = workflows.for_objective(cfg.objective)

    run.message("loading model", f"loading {cfg.model.source if not job.lineage.parent else 'parent ' + str(job.lineage.parent)} ({rt.dtype}, {rt.device})")
    with distributed.main_first():  # several processes: rank 0 fills the converted-model cache, the others read it
        start = load_start(job, paths, dtype=rt.dtype, attn=rt.attn_implementation)
    model, tokenizer = start.model, start.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    run.message("tokenizing", f"preparing {len(train)} train and {len(evals)} eval examples ({fmt}, {cfg.objective})")
    with distributed.main_first():  # several processes: rank 0 fills the tokenized cache, the others read it
        data, cached = workflow.prepare(job, tokenizer, start, train, evals)

    before_file = paths.outputs / ".heldout_before.json"
    paths.outputs.mkdir(parents=True, exist_ok=True)
    if before_file.is_file():  # a resumed run keeps the score of the untouched model
        before = read_json(before_file)
    elif distributed.is_main():  # samples and scores are rank 0's
        before = _heldout(run, job, model, tokenizer, evals, "before")
        before["preference"] = _preference_heldout(run, job, model, tokenizer, evals, "before")
        write_json_atomic(before_file, before)
    else:
        before = {"score": None, "items": []}

    resume = last_complete_checkpoint(paths.checkpoints)  # never half a checkpoint (killed or disk full mid-save)
    if resume and (note := distributed.resume_note(resume, cfg)):
        run.message("resuming", note)
    started = {
        "num_train_examples": len(data["train"]),
        "num_eval_examples": len(data["eval"]) if "eval" in data else 0,
        "method": cfg.method,
        "objective": cfg.objective,
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
    callbacks = callbacks_for(job, paths, callback)
    trainer = workflow.build_trainer(job, rt, model, tokenizer, data, training_args(job, rt, paths.checkpoints, "eval" in data), callbacks)
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

    stop = stop_reason(job, state, callbacks)
    if trainer.args.load_best_model_at_end and state.best_metric is not None:
        eval_loss = state.best_metric  # the model kept is the best one, not the last
    else:
        eval_loss = next((h["eval_loss"] for h in reversed(state.log_history) if "eval_loss" in h and h.get("step") == state.global_step), None)
    if "eval" in data and eval_loss is None:
        run.message("evaluating", "computing eval loss")
        eval_loss = trainer.evaluate().get("eval_loss")
    if distributed.sharded(cfg.resources.strategy):
        final = _save_sharded(job, paths, trainer, tokenizer)  # every rank holds part of the weights
    if not distributed.is_main():
        return EXIT_OK  # rank 0 samples, saves and reports
    after = _heldout(run, job, trainer.model, tokenizer, evals, "after")
    after["preference"] = _preference_heldout(run, job, trainer.model, tokenizer, evals, "after")
    for stage, items in (("before", before["items"]), ("after", after["items"])):
        for item in items[: cfg.output.num_samples]:
            run.writer.emit("sample", stage=stage, **item)

    if not distributed.sharded(cfg.resources.strategy):
        run.message("saving", "saving the trained model")
        final = _save_final(job, paths, trainer.model, tokenizer, start)
    trained = "train_runtime" in result.metrics  # False when a finished checkpoint was only reloaded
    new_tokens = int(state.num_input_tokens_seen or 0) - callback.tokens_at_start
    tps = new_tokens / train_seconds if trained and train_seconds > 0 and new_tokens > 0 else None
    metrics = _metrics(job, rt, start, result, state, eval_loss, before, after, train_seconds, run.t0, started, tps)
    metrics["stop_reason"] = stop
    write_json_atomic(paths.metrics_json, metrics)
    n = cfg.output.num_samples
    write_samples(paths.samples_jsonl, before["items"][:n], after["items"][:n])
    plot_loss(paths.loss_png, callback.history)
    write_model_card(paths.model_card, job, metrics, final, start.description)
    run.writer.emit("finished", metrics=metrics, model_path=str(final), stop_reason=stop)
    return EXIT_OK


def stop_reason(job: ResolvedJob, state: Any, callbacks: list[Any]) -> str:
    """Why training ended: `early_stopping` (eval loss stopped improving), else `max_steps` or `epochs`."""
    from transformers import EarlyStoppingCallback

    early = next((c for c in callbacks if isinstance(c, EarlyStoppingCallback)), None)
    if early is not None and early.early_stopping_patience_counter >= early.early_stopping_patience and state.global_step < state.max_steps:
        return "early_stopping"
    return "max_steps" if job.config.training.max_steps > 0 else "epochs"


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
        "objective": job.config.objective,
        "model": start.base.name,
        "train_loss": train_loss,
        "eval_loss": eval_loss,
        # a DPO/ORPO loss is not a language-model loss: no perplexity for it
        "perplexity": perplexity(eval_loss) if eval_loss is not None and job.config.objective == "sft" else None,
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
        **_preference_metrics(job, state, before, after),
        "resumed_from": started["resumed_from"],
        "tokenization_cached": started["tokenization_cached"],
        "runtime": rt.model_dump(),
        "data_sha256": {f"{d.name}@{d.version}": d.sha256 for d in job.datasets},
        "lineage": {"parent": job.lineage.parent, "parent_chain": job.lineage.parent_chain, "started_from": start.weights_record(None).model_dump(mode="json")},
        "best_step": state.best_global_step if state.best_metric is not None else None,
        "history": [h for h in state.log_history if "loss" in h or "eval_loss" in h],
    }


def _preference_metrics(job: ResolvedJob, state: Any, before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Held-out preference accuracy and margin before/after, and the last eval's reward figures (TRL's names, `/` → `_`)."""
    if job.config.objective == "sft":
        return {}
    pref_before, pref_after = before.get("preference") or {}, after.get("preference") or {}
    last_eval = next((h for h in reversed(state.log_history) if "eval_loss" in h), {})
    return {
        "heldout_preference_accuracy_before": pref_before.get("accuracy"),
        "heldout_preference_accuracy_after": pref_after.get("accuracy"),
        "heldout_preference_margin_before": pref_before.get("margin"),
        "heldout_preference_margin_after": pref_after.get("margin"),
        "heldout_preference_pairs": pref_after.get("pairs"),
        **{f"eval_{key}": last_eval.get(f"eval_{trl}") for key, trl in preference_log_keys().items()},
    }
