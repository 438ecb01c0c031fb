"""Split an eval's prompts across ranks and score the gathered generations through the one `evaluate` path.

Each rank generates a contiguous shard of a task's prompts with its own engine; rank 0 gathers the
shards in rank order and hands them to `evaluate` through `ReplayBackend`, so scoring, aggregation and
records are exactly those of a single-engine eval. Greedy decoding gives the same generations either way;
sampled decoding draws different random numbers per shard (each engine seeds its own generator). Knows
nothing of Lightning or torch.distributed.
"""

from __future__ import annotations

from collections.abc import Sequence

from sftlab.eval.types import Generation, SamplingConfig


def shard_bounds(num_items: int, num_shards: int) -> list[tuple[int, int]]:
    """Contiguous, balanced [start, end) ranges covering `num_items` (sizes differ by at most one)."""
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got num_shards={num_shards}")
    cuts = [num_items * k // num_shards for k in range(num_shards + 1)]
    return list(zip(cuts, cuts[1:], strict=False))


def join_shards(shards: Sequence[Sequence[list[Generation]]], num_items: int) -> list[list[Generation]]:
    """The per-prompt generations of all shards in prompt order; an error if any shard is short."""
    joined = [gens for shard in shards for gens in shard]
    if len(joined) != num_items:
        sizes = [len(s) for s in shards]
        raise RuntimeError(
            f"gathered {len(joined)} prompt outputs (per rank {sizes}) for {num_items} prompts"
        )
    return joined


class ReplayBackend:
    """A `GenerationBackend` that returns generations made elsewhere (by the ranks), for `evaluate`."""

    def __init__(self, outputs: list[list[Generation]]) -> None:
        self.outputs = outputs

    def start(self, model_path: str) -> None:
        return None

    def update_weights(self, folder: str) -> None:
        return None

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig) -> list[list[Generation]]:
        if len(prompts) != len(self.outputs):
            raise RuntimeError(f"{len(self.outputs)} gathered outputs for {len(prompts)} prompts")
        return self.outputs

    def close(self) -> None:
        return None
