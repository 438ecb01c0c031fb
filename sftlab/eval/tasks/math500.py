"""MATH500 (Lightman et al. 2023's 500-problem MATH test subset), hub `HuggingFaceH4/MATH-500` test split,
fields problem/answer; the paper reports avg@3. Scored by math-verify."""

from __future__ import annotations

from sftlab.eval.tasks._math import MathBenchmark


class Math500Task(MathBenchmark):
    __doc__ = MathBenchmark.__doc__
    version = 1
    NAME = "math500"
    HUB_ID = "HuggingFaceH4/MATH-500"
    SPLIT = "test"
    DEFAULT_N = 3
