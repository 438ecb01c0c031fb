"""GSM8K (Cobbe et al. 2021), hub `openai/gsm8k` config "main" test split, fields question/answer; the
gold is the text after the final `####` of the worked solution (commas removed: "1,000" -> "1000"), as in
the dataset card. Scored by math-verify, avg@1."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sftlab.data.example import DataError
from sftlab.eval.tasks._math import MathBenchmark


class Gsm8kTask(MathBenchmark):
    __doc__ = MathBenchmark.__doc__
    version = 1
    NAME = "gsm8k"
    HUB_ID = "openai/gsm8k"
    CONFIG = "main"
    SPLIT = "test"
    QUESTION_FIELD = "question"
    DEFAULT_N = 1

    def gold(self, row: Mapping[str, Any]) -> str:
        solution = str(row[self.ANSWER_FIELD])
        if "####" not in solution:
            raise DataError(f"GSM8K answer has no '####' final answer: {solution[-80:]!r}")
        return solution.rsplit("####", 1)[1].strip().replace(",", "")
