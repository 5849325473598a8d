"""Length-grouped batches in random order, and every trained token weighing the same."""

from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from nocodetune.training.batching import EqualTokenWeights, LengthGroupedBatches, mean_trained_tokens


def _lengths(n: int = 1000, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [min(int(rng.paretovariate(1.2) * 20), 512) for _ in range(n)]


def _batches(order: list[int], size: int) -> list[list[int]]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def _padded(lengths: list[int], batches: list[list[int]]) -> int:
    return sum(max(lengths[i] for i in b) * len(b) for b in batches)


def test_every_example_once_per_epoch_with_little_padding():
    lengths = _lengths()
    sampler = LengthGroupedBatches(lengths, batch_size=8, seed=3)
    order = list(sampler)
    assert sorted(order) == list(range(len(lengths)))
    random_order = list(range(len(lengths)))
    random.Random(1).shuffle(random_order)
    grouped, shuffled = _padded(lengths, _batches(order, 8)), _padded(lengths, _batches(random_order, 8))
    assert grouped < 1.15 * sum(lengths) < shuffled  # random batches pad far more on long-tailed lengths


def test_batches_come_in_random_order_not_longest_first():
    """transformers' sampler walks each mega-batch from its longest batch to its shortest; these must not."""
    lengths = _lengths()
    maxima = [max(lengths[i] for i in b) for b in _batches(list(LengthGroupedBatches(lengths, 8, seed=3)), 8)]
    descents = sum(1 for a, b in zip(maxima, maxima[1:]) if a >= b)
    assert 0.3 < descents / (len(maxima) - 1) < 0.7  # about half the neighbours go down, as in a random order
    first_half = sum(maxima[: len(maxima) // 2]) / (len(maxima) // 2)
    second_half = sum(maxima[len(maxima) // 2 :]) / (len(maxima) - len(maxima) // 2)
    assert 0.5 < first_half / second_half < 2.0


def test_order_is_reproducible_per_epoch_and_changes_between_epochs():
    lengths = _lengths(200)
    a, b = LengthGroupedBatches(lengths, 4, seed=7), LengthGroupedBatches(lengths, 4, seed=7)
    assert list(a) == list(b)  # a resumed run replays the same order and skips what it did
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first and sorted(a) == sorted(first)
    assert list(LengthGroupedBatches(lengths, 4, seed=8)) != first


def test_the_one_incomplete_batch_comes_last():
    lengths = _lengths(203)  # 203 = 50 x 4 + 3
    for epoch in range(5):
        sampler = LengthGroupedBatches(lengths, 4, seed=1)
        sampler.set_epoch(epoch)
        batches = _batches(list(sampler), 4)
        assert [len(b) for b in batches[:-1]] == [4] * 50 and len(batches[-1]) == 3


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


def test_sft_trainer_is_built_with_the_fixed_divisor_and_grouped_batches(job_factory):
    from nocodetune.records.job import read_resolved
    from nocodetune.training.auto import resolve_runtime
    from nocodetune.training.models import load_start
    from nocodetune.training.runner import load_examples
    from nocodetune.training.trainer_setup import training_args
    from nocodetune.training.workflows import sft
    from nocodetune.workspace import JobPaths

    paths = JobPaths(job_factory("weights"))
    job = read_resolved(paths)
    rt = resolve_runtime(job.config, device="cpu")
    start = load_start(job, dtype=rt.dtype, attn=rt.attn_implementation)
    _, train, evals = load_examples(job, paths)
    data, _ = sft.prepare(job, start.tokenizer, start, train, evals)
    trainer = sft.build_trainer(job, rt, start.model, start.tokenizer, data, training_args(job, rt, paths.checkpoints, True), [])

    per_example = mean_trained_tokens(data["train"]["labels"])
    assert trainer.tokens_per_step == pytest.approx(per_example * job.config.training.per_device_train_batch_size)
    loader = trainer.get_train_dataloader()
    assert isinstance(loader.batch_sampler.sampler if hasattr(loader.batch_sampler, "sampler") else loader.sampler, LengthGroupedBatches)
    _, divisor = trainer.get_batch_samples(iter(loader), 1, torch.device("cpu"))
    assert float(divisor) == pytest.approx(trainer.tokens_per_step)
