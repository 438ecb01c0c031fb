"""The shared shape of the math benchmarks (MATH500, AIME24/25, GSM8K): question + the paper's
instruction as the only user turn, the gold answer string as the reference, math-verify scoring.

Each benchmark file subclasses this with its hub id, split, field names and avg@n; the class only reads
rows and scores. Knows nothing about backends or Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sftlab.data.example import PAPER_INSTRUCTION, user_prompt
from sftlab.eval.scorers.math import score_math, score_math_many
from sftlab.eval.task import EvalItem, TaskGroup
from sftlab.eval.tasks._source import benchmark_rows, build_items
from sftlab.eval.types import SamplingConfig, Score

# Paper sampling (arXiv 2604.06628, §3): temperature 0.6, top_p 0.95, up to 32,768 new tokens.
PAPER_TEMPERATURE, PAPER_TOP_P, PAPER_MAX_TOKENS = 0.6, 0.95, 32768


class MathBenchmark:
    """A math benchmark scored by math-verify (see subclasses for data and defaults).

    Args:
        source: local JSONL/JSON/Parquet file in the hub schema (overrides the hub dataset).
        limit: first N problems (None: all).
        n: samples per problem; accuracy is avg@n (None: the benchmark's paper setting).
        temperature, top_p, max_tokens, seed: sampling (paper: 0.6, 0.95, 32768).
        group: the task's group for aggregates.
        instruction: appended to the question (the paper's by default).
        name: task name in metric keys (None: the benchmark's name).
    """

    version = 1
    NAME = "math"
    HUB_ID = ""
    CONFIG: str | None = None
    SPLIT = "test"
    QUESTION_FIELD = "problem"
    ANSWER_FIELD = "answer"
    DEFAULT_N = 1

    def __init__(
        self,
        source: str | None = None,
        limit: int | None = None,
        n: int | None = None,
        temperature: float = PAPER_TEMPERATURE,
        top_p: float = PAPER_TOP_P,
        max_tokens: int = PAPER_MAX_TOKENS,
        seed: int = 0,
        group: TaskGroup = "id",
        instruction: str = PAPER_INSTRUCTION,
        name: str | None = None,
    ) -> None:
        self.name = name or self.NAME
        self.group = group
        self.source = source
        self.limit = limit
        self.instruction = instruction
        self.sampling = SamplingConfig(
            n=self.DEFAULT_N if n is None else n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_tokens,
            seed=seed,
        )
        self._items: list[EvalItem] | None = None

    def gold(self, row: Mapping[str, Any]) -> str:
        """The gold answer string from a row (GSM8K overrides this)."""
        return str(row[self.ANSWER_FIELD]).strip()

    def items(self) -> list[EvalItem]:
        if self._items is None:
            rows = benchmark_rows(self.source, self.HUB_ID, self.SPLIT, config=self.CONFIG, limit=self.limit)
            self._items = build_items(rows, self._item, self.name)
        return self._items

    def _item(self, i: int, row: Mapping[str, Any]) -> EvalItem:
        question, gold = str(row[self.QUESTION_FIELD]), self.gold(row)
        if not question.strip() or not gold:
            raise ValueError(f"empty {self.QUESTION_FIELD!r} or {self.ANSWER_FIELD!r}")
        return EvalItem(id=f"{self.name}:{i}", prompt=user_prompt(question, self.instruction), reference=gold)

    def score(self, response: str, reference: str) -> Score:
        return score_math(response, reference)

    def score_many(self, responses: Sequence[str], references: Sequence[str]) -> list[Score]:
        return score_math_many(responses, references)
