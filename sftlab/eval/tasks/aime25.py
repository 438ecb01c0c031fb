"""AIME 2025 (30 problems), hub `math-ai/aime25` test split, fields problem/answer; avg@10 like AIME24
(not in the paper's tables; same protocol). Scored by math-verify."""

from __future__ import annotations

from sftlab.eval.tasks._math import MathBenchmark


class Aime25Task(MathBenchmark):
    __doc__ = MathBenchmark.__doc__
    version = 1
    NAME = "aime25"
    HUB_ID = "math-ai/aime25"
    SPLIT = "test"
    DEFAULT_N = 10
