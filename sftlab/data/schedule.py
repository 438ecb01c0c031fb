"""Step planning: which examples go into which micro-batch of which optimizer step on which rank.

A schedule is stated in sequences, as papers state it: `global_batch_size` sequences per optimizer step.
Gradient accumulation follows from the world size and the micro batch. Every rank gets the same number of
micro-batches per step, so collective ops stay in step. An epoch's last incomplete global batch is dropped
and the count reported (the paper's 20,480 rows / 256 divide exactly). Pure: no torch, no Lightning.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


def accumulation_steps(global_batch_size: int, micro_batch_size: int, world_size: int) -> int:
    """Micro-batches per rank per optimizer step; an error when the numbers do not divide."""
    if global_batch_size < 1 or micro_batch_size < 1 or world_size < 1:
        raise ValueError(
            f"batch sizes must be positive, got global_batch_size={global_batch_size}, "
            f"micro_batch_size={micro_batch_size}, world_size={world_size}"
        )
    per_step = micro_batch_size * world_size
    if global_batch_size % per_step:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by micro_batch_size={micro_batch_size} x "
            f"world_size={world_size} = {per_step}; choose a global batch that is a multiple of {per_step}"
        )
    return global_batch_size // per_step


def subset_indices(num_rows: int, num_samples: int | None, seed: int) -> list[int]:
    """A deterministic subset of `num_samples` rows (seeded choice, original order kept); all rows if None."""
    if num_samples is None or num_samples >= num_rows:
        if num_samples is not None and num_samples > num_rows:
            raise ValueError(f"num_samples={num_samples} exceeds the {num_rows} rows available; lower it")
        return list(range(num_rows))
    if num_samples < 1:
        raise ValueError(f"num_samples must be >= 1, got num_samples={num_samples}")
    return sorted(random.Random(seed).sample(range(num_rows), num_samples))


def epoch_order(num_examples: int, epoch: int, seed: int, shuffle: bool) -> list[int]:
    """The order examples are visited in one epoch: data order, or a shuffle seeded by (seed, epoch)."""
    order = list(range(num_examples))
    if shuffle:
        random.Random(f"{seed}:{epoch}").shuffle(order)
    return order


@dataclass(frozen=True)
class RankPlan:
    """One epoch on one rank: steps[s][m] lists the example indices of micro-batch m of step s."""

    steps: tuple[tuple[tuple[int, ...], ...], ...]
    dropped_examples: int  # examples of the incomplete last global batch, not visited this epoch

    @property
    def num_micro_batches(self) -> int:
        return sum(len(step) for step in self.steps)


def plan_epoch(
    order: list[int], *, global_batch_size: int, micro_batch_size: int, world_size: int, rank: int
) -> RankPlan:
    """Split `order` into global batches, each global batch into equal rank shares (contiguous), each
    share into micro-batches."""
    accum = accumulation_steps(global_batch_size, micro_batch_size, world_size)
    if not 0 <= rank < world_size:
        raise ValueError(f"rank={rank} outside world_size={world_size}")
    num_steps = len(order) // global_batch_size
    share = global_batch_size // world_size
    steps = []
    for s in range(num_steps):
        start = s * global_batch_size + rank * share
        mine = order[start : start + share]
        steps.append(
            tuple(tuple(mine[m * micro_batch_size : (m + 1) * micro_batch_size]) for m in range(accum))
        )
    return RankPlan(steps=tuple(steps), dropped_examples=len(order) - num_steps * global_batch_size)
