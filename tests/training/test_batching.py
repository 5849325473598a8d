"""Length-grouped batches in random order, and every trained token weighing the same."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from nocodetune.training.batching import EqualTokenWeights, mean_trained_tokens, micro_batches


def test_micro_batches_cover_the_batch_once_with_little_padding():
    rng = random.Random(0)
    lengths = [max(8, min(int(rng.paretovariate(1.2) * 20), 512)) for _ in range(32)]
    groups = micro_batches(lengths)
    assert sorted(i for g in groups for i in g) == list(range(32))
    padded = sum(max(lengths[i] for i in g) * len(g) for g in groups)
    assert padded < 1.15 * sum(lengths) < max(lengths) * len(lengths)  # vs one pass padded to the longest row
    assert len(groups) < 32  # but not one pass per row: each pass has a cost of its own
    for g in groups:  # each micro-batch is a run of similar lengths
        assert all(lengths[i] <= lengths[g[0]] for i in g)


def test_equal_rows_stay_one_pass_and_one_row_is_one_pass():
    assert micro_batches([50] * 8) == [list(range(8))]
    assert micro_batches([7]) == [[0]]
    assert micro_batches([300, 10], overhead=64) == [[0], [1]]  # 300 + 10 + 2 x 64 < 2 x 300 + 64
    assert micro_batches([60, 50], overhead=64) == [[0, 1]]  # 2 x 60 + 64 < 60 + 50 + 2 x 64


def test_mean_trained_tokens_counts_what_the_causal_loss_counts():
    # the first label is never predicted (labels are shifted by one)
    assert mean_trained_tokens([[5, -100, 7, 8], [-100, -100, 9, -100]]) == pytest.approx((2 + 1) / 2)


class _FakeTrainer:
    """What EqualTokenWeights builds on: the Trainer's per-step count and its logging."""

    def __init__(self, counts: list[int]) -> None:
        self.counts = iter(counts)
        self.logged: list[dict[str, Any]] = []

    def get_batch_samples(self, iterator: Any, num_batches: int, device: Any) -> tuple[list[Any], Any]:
        return ["batch"], torch.tensor(next(self.counts))

    def log(self, logs: dict[str, Any], start_time: float | None = None) -> None:
        self.logged.append(dict(logs))


class _Weighted(EqualTokenWeights, _FakeTrainer):
    pass


def test_each_step_divides_by_the_same_token_count_and_the_logged_loss_is_the_token_mean():
    trainer = _Weighted([10, 30])
    trainer.tokens_per_step = 25.0
    _, first = trainer.get_batch_samples(None, 1, "cpu")
    _, second = trainer.get_batch_samples(None, 1, "cpu")
    assert float(first) == float(second) == 25.0  # not 10 and 30: a token of the short step weighs as much as one of the long

    # per-token losses 2.0 (10 tokens) and 1.0 (30 tokens); the Trainer logs the mean of (token sum / divisor) over the steps
    trainer.log({"loss": (20 / 25 + 30 / 25) / 2, "learning_rate": 1e-3})
    assert trainer.logged[-1]["loss"] == pytest.approx((20 + 30) / (10 + 30))
    assert trainer.logged[-1]["learning_rate"] == 1e-3


def test_without_a_divisor_the_trainer_keeps_its_own_count():
    trainer = _Weighted([12])
    _, count = trainer.get_batch_samples(None, 1, "cpu")
    assert int(count) == 12
    trainer.log({"loss": 1.5})
    assert trainer.logged[-1]["loss"] == 1.5


def _sft_trainer(job_dir: Any) -> tuple[Any, Any, Any]:
    from nocodetune.records.job import read_resolved
    from nocodetune.training.auto import resolve_runtime
    from nocodetune.training.models import load_start
    from nocodetune.training.runner import load_examples
    from nocodetune.training.trainer_setup import training_args
    from nocodetune.training.workflows import sft
    from nocodetune.workspace import JobPaths

    paths = JobPaths(job_dir)
    job = read_resolved(paths)
    rt = resolve_runtime(job.config, device="cpu")
    start = load_start(job, paths, dtype=rt.dtype, attn=rt.attn_implementation)
    _, train, evals = load_examples(job, paths)
    data, _ = sft.prepare(job, start.tokenizer, start, train, evals)
    trainer = sft.build_trainer(job, rt, start.model, start.tokenizer, data, training_args(job, rt, paths.checkpoints, True), [])
    return trainer, job, data


def _mixed_rows() -> list[dict[str, str]]:
    """Answers of very different lengths, so a batch has much padding to save."""
    return [{"prompt": f"Say it {n} times: {word}", "completion": " ".join([word] * n)} for n, word in zip([1, 2, 3, 5, 8, 13, 21, 34] * 3, ["date", "ISO", "month", "year"] * 6)]


def test_sft_trainer_divides_every_step_by_the_same_expected_token_count(job_factory):
    trainer, job, data = _sft_trainer(job_factory("weights"))
    per_example = mean_trained_tokens(data["train"]["labels"])
    assert trainer.tokens_per_step == pytest.approx(per_example * job.config.training.per_device_train_batch_size)
    assert trainer.split_by_length is True  # 'auto' on a CPU
    _, divisor = trainer.get_batch_samples(iter(trainer.get_train_dataloader()), 1, torch.device("cpu"))
    assert float(divisor) == pytest.approx(trainer.tokens_per_step)


def test_micro_batched_step_gives_the_whole_batchs_gradient(job_factory):
    """The point of splitting: the same update as the padded random batch, computed without the padding."""
    trainer, _, _ = _sft_trainer(job_factory("split", rows=_mixed_rows(), config={"lora": {"dropout": 0.0}, "training": {"per_device_train_batch_size": 8}}))
    model = trainer.model
    batches, divisor = trainer.get_batch_samples(iter(trainer.get_train_dataloader()), 1, torch.device("cpu"))
    batch = batches[0]
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    assert len(micro_batches(lengths)) > 1  # this batch is actually split

    def gradients(split: bool) -> tuple[float, list[Any]]:
        trainer.split_by_length = split
        model.zero_grad()
        loss = trainer.training_step(model, dict(batch), divisor)
        return float(loss), [p.grad.clone() for p in model.parameters() if p.requires_grad]

    whole_loss, whole = gradients(False)
    split_loss, split = gradients(True)
    assert split_loss == pytest.approx(whole_loss, rel=1e-5)
    assert all(torch.allclose(a, b, rtol=1e-4, atol=1e-7) for a, b in zip(whole, split))
