"""Fast batches that cost no quality: random batches, run as micro-batches of similar length,
and a loss in which every trained token weighs the same.

Why (bench/RESULTS.md): on a CPU every pad token costs as much as a real one, and random
batches of long-tailed examples are padded to ~1.8x their real length. Grouping examples
of similar length into batches (transformers' `group_by_length`) removes the padding but
cost 1-2% held-out loss against random batches, and neither visiting the grouped batches
in random order, nor weighting every token the same, nor sizing them by tokens closed that
gap (measured): a step made of examples of one length learns less than a random one.

So the batches stay random, and only how a batch is *computed* changes: `training_step`
sorts the batch's examples by length and runs them as a few micro-batches, each cut to its
own longest example (`micro_batches` picks the cut that minimises padded tokens plus a
per-pass overhead). Every micro-batch's loss is its summed token loss over the same
divisor and the gradients add up before the optimizer step, so the step's gradient is the
random batch's gradient: same quality, without the padding.

The divisor (`EqualTokenWeights`) is one fixed number, the expected trained tokens of a
step (mean trained tokens per example x examples per step), not the step's own count, so
that every trained token weighs the same whichever batch it lands in. transformers'
Trainer passes it to the loss as `num_items_in_batch` (the model's loss and TRL's both
divide the token sum by it). The logged training loss stays the plain token mean of the
logged steps.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any

import torch

from nocodetune.data.tokens import IGNORE

PASS_OVERHEAD_TOKENS = 64  # the cost of one more forward/backward pass, in padded tokens (small GEMMs, Python overhead)


def micro_batches(lengths: Sequence[int], overhead: int = PASS_OVERHEAD_TOKENS) -> list[list[int]]:
    """Row indices of a batch grouped into micro-batches of similar length.

    The rows are sorted longest first and cut into contiguous groups minimising the
    padded tokens computed (rows x longest row, per group) plus `overhead` per group.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    n = len(order)
    if n <= 1:
        return [order]
    sorted_lengths = [lengths[i] for i in order]
    # best[j]: least cost for the first j rows; a group order[i:j] costs (j - i) x sorted_lengths[i] + overhead
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):
            cost = best[i] + (j - i) * sorted_lengths[i] + overhead
            if cost < best[j]:
                best[j], cut[j] = cost, i
    groups: list[list[int]] = []
    j = n
    while j > 0:
        groups.append(order[cut[j] : j])
        j = cut[j]
    return groups[::-1]


def mean_trained_tokens(labels: Sequence[Sequence[int]]) -> float:
    """Mean number of trained tokens per example, counted as the causal LM loss counts them (labels[1:])."""
    if not labels:
        return 0.0
    return sum(sum(1 for label in row[1:] if label != IGNORE) for row in labels) / len(labels)


class EqualTokenWeights:
    """Mixin for a Trainer subclass: a fixed loss divisor per optimizer step, and batches run as length-sorted micro-batches.

    Set `tokens_per_step` (expected trained tokens of one optimizer step over all
    processes) and `split_by_length` after construction; with `tokens_per_step` None the
    Trainer's own per-step count is used.
    """

    tokens_per_step: float | None = None
    split_by_length: bool = False
    _window_tokens: float = 0.0
    _window_steps: int = 0

    def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list[Any], Any]:
        batches, counted = super().get_batch_samples(epoch_iterator, num_batches, device)  # type: ignore[misc]
        if self.tokens_per_step is None or counted is None:
            return batches, counted
        self._window_tokens += float(counted)
        self._window_steps += 1
        return batches, torch.tensor(float(self.tokens_per_step), device=device)

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> Any:
        """Forward and backward over length-sorted micro-batches of `inputs`; returns their summed loss.

        Only when each part's loss is a token sum over a shared divisor (`num_items_in_batch`),
        so that the parts' losses and gradients add up to the whole batch's; and not under
        DeepSpeed or FSDP, which expect one backward per micro-batch.
        """
        mask = inputs.get("attention_mask")
        if (
            not self.split_by_length
            or num_items_in_batch is None
            or mask is None
            or mask.dim() != 2
            or mask.shape[0] <= 1
            or getattr(self, "is_deepspeed_enabled", False)
            or getattr(self, "is_fsdp_enabled", False)
        ):
            return super().training_step(model, inputs, num_items_in_batch)  # type: ignore[misc]
        lengths = mask.sum(dim=1).tolist()
        rows, width = mask.shape
        groups = micro_batches(lengths)
        total = None
        for number, group in enumerate(groups):
            longest = max(int(lengths[i]) for i in group)
            index = torch.tensor(group, device=mask.device)
            part = {
                key: value.index_select(0, index)[:, :longest] if torch.is_tensor(value) and value.dim() == 2 and value.shape == (rows, width) else value
                for key, value in inputs.items()
            }
            last = number == len(groups) - 1
            with self.accelerator.no_sync(model) if not last else nullcontext():  # type: ignore[attr-defined]
                loss = super().training_step(model, part, num_items_in_batch)  # type: ignore[misc]
            total = loss if total is None else total + loss
        return total

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            if self.tokens_per_step and self._window_tokens > 0:
                # The Trainer logs the mean over steps of (token-loss sum / tokens_per_step); undo the divisor.
                logs["loss"] = float(logs["loss"]) * self._window_steps * self.tokens_per_step / self._window_tokens
            self._window_tokens, self._window_steps = 0.0, 0
        super().log(logs, start_time)  # type: ignore[misc]

