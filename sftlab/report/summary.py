"""Reduce a metric's series to the four numbers the paper reads a run by (pure python).

baseline: the step-0 value (the untrained model; None when step 0 was not evaluated).
lowest:   the minimum (for accuracy: the bottom of the dip).
best:     the maximum of a higher-is-better metric (accuracy, score), the minimum of a lower-is-better one
          (ASR); None for metrics with no better direction (response length, clip rate).
final:    the last value.
Each comes with its step. NaN values (a failed eval) are ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sftlab.report.reader import RunData, Series

Direction = Literal["higher", "lower"]


@dataclass(frozen=True)
class Point:
    step: int
    value: float


@dataclass(frozen=True)
class MetricSummary:
    key: str
    baseline: Point | None
    lowest: Point
    best: Point | None
    final: Point
    num_points: int


def direction(key: str) -> Direction | None:
    """Which way is better for a metric key: accuracy and scores up, attack success rates down."""
    last = key.rsplit("/", 1)[-1]
    if last in ("accuracy", "score"):
        return "higher"
    if last.startswith("asr") or re.search(r"/asr\w*/cat_\w+$", key):  # asr, asr_refusal_proxy
        return "lower"
    return None


def summarize(series: Series) -> MetricSummary | None:
    """The summary of `series`, or None when it has no finite value."""
    points = [Point(s, v) for s, v in zip(series.steps, series.values, strict=True) if math.isfinite(v)]
    if not points:
        return None
    lowest = min(points, key=lambda p: (p.value, p.step))
    highest = max(points, key=lambda p: (p.value, -p.step))  # ties: the earliest step
    better = direction(series.key)
    best = highest if better == "higher" else lowest if better == "lower" else None
    baseline = next((p for p in points if p.step == 0), None)
    return MetricSummary(series.key, baseline, lowest, best, points[-1], len(points))


def table_keys(runs: Sequence[RunData]) -> list[str]:
    """The metrics a report tabulates: group aggregates first, then every task's accuracy/score/ASR and
    mean response length, in a stable order; only keys some run logged."""
    present = sorted({k for run in runs for k in run.eval_keys})
    groups = [
        k
        for k in ("eval/id/accuracy", "eval/ood/accuracy", "eval/general/score", "eval/safety/asr")
        if k in present
    ]
    per_task = [
        k
        for k in present
        if k not in groups
        and k.count("/") == 2
        and (
            k.split("/")[2] in ("accuracy", "score", "response_tokens_mean")
            or k.split("/")[2].startswith("asr")
        )
    ]
    return groups + per_task
