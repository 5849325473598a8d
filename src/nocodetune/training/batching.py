"""Fast batches that cost no quality: length-grouped batches in random order, and a loss
in which every trained token weighs the same.

Why (bench/RESULTS.md): on a CPU every pad token costs as much as a real one, so batching
examples of similar length buys ~2x tokens/s. transformers' own length grouping cost ~2%
held-out loss, for two reasons this module removes:

- **Order.** `LengthGroupedSampler` sorts each mega-batch longest first and keeps that
  order, so within every mega-batch training runs from long to short examples (and a short
  run only ever sees the long end). `LengthGroupedBatches` forms the same low-padding
  batches but visits them in random order.
- **Weight.** A per-batch token mean gives a token of a batch of short answers more weight
  than a token of a batch of long ones; grouped batches make that gap large.
  `EqualTokenWeights` divides each optimizer step's summed token loss by one fixed number,
  the expected trained tokens of a step (mean trained tokens per example x examples per
  step), instead of the step's own count. transformers' Trainer passes that divisor to the
  loss as `num_items_in_batch` (the model's loss and TRL's both divide the token sum by
  it), so only the count changes. Over an epoch every trained token then adds the same
  amount to the updates, as in one big batch.

The logged training loss stays the plain token mean of the logged steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch.utils.data import Sampler

from nocodetune.data.tokens import IGNORE

MEGA_BATCH_MULT = 50  # batches sorted together (transformers' choice): more = less padding, less mixing


class LengthGroupedBatches(Sampler[int]):
    """Indices such that each run of `batch_size` holds examples of similar length, runs in random order.

    Every epoch: shuffle, cut into mega-batches of MEGA_BATCH_MULT batches, sort each by
    length, cut into batches, shuffle the batches. The one incomplete batch (if any) stays
    last so the data loader's consecutive slicing keeps every other batch whole. Seeded by
    (seed, epoch): a resumed run replays the same order and skips what it has done.

    `batch_size` is the examples of one micro-batch over all processes (per-device batch x
    processes): the data loader deals consecutive per-device slices to the processes, so
    every process gets examples of similar length at the same step.
    """

    def __init__(self, lengths: Sequence[int], batch_size: int, seed: int) -> None:
        self.lengths = [int(n) for n in lengths]
        self.batch_size = max(1, batch_size)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def batches(self) -> list[list[int]]:
        n, size = len(self.lengths), self.batch_size
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(n, generator=generator).tolist()
        mult = max(1, min(n // (size * 4), MEGA_BATCH_MULT))  # at least 4 mega-batches on small sets
        mega = mult * size
        full: list[list[int]] = []
        tail: list[int] = []
        for start in range(0, n, mega):
            group = sorted(order[start : start + mega], key=lambda i: self.lengths[i], reverse=True)
            for b in range(0, len(group), size):
                batch = group[b : b + size]
                if len(batch) == size:
                    full.append(batch)
                else:
                    tail = batch  # only the last mega-batch can leave a partial batch
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        return shuffled + ([tail] if tail else [])

    def __iter__(self) -> Iterator[int]:
        return iter([i for batch in self.batches() for i in batch])


def mean_trained_tokens(labels: Sequence[Sequence[int]]) -> float:
    """Mean number of trained tokens per example, counted as the causal LM loss counts them (labels[1:])."""
    if not labels:
        return 0.0
    return sum(sum(1 for label in row[1:] if label != IGNORE) for row in labels) / len(labels)


class EqualTokenWeights:
    """Mixin for a Trainer subclass: a fixed loss divisor per optimizer step, optional length-grouped batches.

    Set `tokens_per_step` (expected trained tokens of one optimizer step over all
    processes) and `group_by_length` after construction; with `tokens_per_step` None the
    Trainer's own per-step count is used.
    """

    tokens_per_step: float | None = None
    group_by_length: bool = False
    _window_tokens: float = 0.0
    _window_steps: int = 0

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        dataset = train_dataset if train_dataset is not None else self.train_dataset  # type: ignore[attr-defined]
        if not self.group_by_length or dataset is None or "input_ids" not in getattr(dataset, "column_names", []):
            return super()._get_train_sampler(train_dataset)  # type: ignore[misc]
        # The Trainer hands over the dataset with unused columns (our `length`) already dropped; the rows are the same.
        full = self.train_dataset  # type: ignore[attr-defined]
        if "length" in getattr(full, "column_names", []) and len(full) == len(dataset):
            lengths = full["length"]
        else:
            lengths = [len(ids) for ids in dataset["input_ids"]]
        args = self.args  # type: ignore[attr-defined]
        seed = args.data_seed if args.data_seed is not None else args.seed
        return LengthGroupedBatches(lengths, args.per_device_train_batch_size * max(1, args.world_size), seed)

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list[Any], Any]:
        batches, counted = super().get_batch_samples(epoch_iterator, num_batches, device)  # type: ignore[misc]
        if self.tokens_per_step is None or counted is None:
            return batches, counted
        self._window_tokens += float(counted)
        self._window_steps += 1
        return batches, torch.tensor(float(self.tokens_per_step), device=device)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            if self.tokens_per_step and self._window_tokens > 0:
                # The Trainer logs the mean over steps of (token-loss sum / tokens_per_step); undo the divisor.
                logs["loss"] = float(logs["loss"]) * self._window_steps * self.tokens_per_step / self._window_tokens
            self._window_tokens, self._window_steps = 0.0, 0
        super().log(logs, start_time)  # type: ignore[misc]
