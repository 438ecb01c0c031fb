"""AIME 2024 (30 problems), hub `HuggingFaceH4/aime_2024` train split (its only split), fields
problem/answer; the paper reports avg@10. Scored by math-verify."""

from __future__ import annotations

from sftlab.eval.tasks._math import MathBenchmark


class Aime24Task(MathBenchmark):
    __doc__ = MathBenchmark.__doc__
    version = 1
    NAME = "aime24"
    HUB_ID = "HuggingFaceH4/aime_2024"
    SPLIT = "train"
    DEFAULT_N = 10
