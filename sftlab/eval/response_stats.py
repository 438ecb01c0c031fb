"""Response metrics computed on every eval: length statistics and how generation ended.

Response length is the paper's diagnostic of the optimisation stage (a spike = surface imitation of long
CoT; a fall and plateau = genuine reasoning), so it is logged next to accuracy for every task.
"""

from __future__ import annotations

from collections.abc import Sequence

from sftlab.eval.types import Generation


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of a non-empty sequence."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def response_stats(generations: Sequence[Generation]) -> dict[str, float]:
    """Token-length statistics, clip rate (stopped by max_tokens) and error rate over all samples."""
    if not generations:
        return {}
    lengths = [float(g.num_tokens) for g in generations]
    n = len(generations)
    return {
        "response_tokens_mean": sum(lengths) / n,
        "response_tokens_p50": quantile(lengths, 0.5),
        "response_tokens_p90": quantile(lengths, 0.9),
        "response_tokens_max": max(lengths),
        "clip_rate": sum(g.finish_reason == "length" for g in generations) / n,
        "generation_error_rate": sum(g.finish_reason == "error" for g in generations) / n,
    }
