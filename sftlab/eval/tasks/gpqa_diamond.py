"""GPQA-Diamond (Rein et al. 2023, 198 questions), hub `Idavidrein/gpqa` config "gpqa_diamond" train split
(gated: accept its terms and set HF_TOKEN), fields Question / Correct Answer / Incorrect Answer 1-3.

The four options are shuffled with a per-question seed, as the paper does ("options shuffled with a fixed
per-question seed"): the seed is the first 8 bytes of SHA-256 of the question text (never Python's
`hash`, which PYTHONHASHSEED randomises), so prompts and gold letters are identical across processes and
machines. avg@3, group ood, letter scored by `score_multiple_choice`.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from typing import Any

from sftlab.data.example import user_prompt
from sftlab.eval.scorers.multiple_choice import GPQA_LETTERS, score_multiple_choice
from sftlab.eval.task import EvalItem, TaskGroup
from sftlab.eval.tasks._choice import CHOICE_INSTRUCTION, choice_prompt
from sftlab.eval.tasks._math import PAPER_MAX_TOKENS, PAPER_TEMPERATURE, PAPER_TOP_P
from sftlab.eval.tasks._source import benchmark_rows, build_items
from sftlab.eval.types import SamplingConfig, Score

HUB_ID, CONFIG, SPLIT = "Idavidrein/gpqa", "gpqa_diamond", "train"
_INCORRECT = ("Incorrect Answer 1", "Incorrect Answer 2", "Incorrect Answer 3")


def question_seed(question: str) -> int:
    """A stable per-question seed: SHA-256 of the stripped question text, first 8 bytes."""
    return int.from_bytes(hashlib.sha256(question.strip().encode("utf-8")).digest()[:8], "big")


def shuffled_options(row: Mapping[str, Any]) -> tuple[list[str], str]:
    """(options in shuffled order, gold letter) for a GPQA row."""
    correct = str(row["Correct Answer"]).strip()
    options = [correct, *(str(row[k]).strip() for k in _INCORRECT)]
    order = list(range(4))
    random.Random(question_seed(str(row["Question"]))).shuffle(order)
    shuffled = [options[i] for i in order]
    return shuffled, GPQA_LETTERS[order.index(0)]


class GpqaDiamondTask:
    """GPQA-Diamond accuracy (avg@n) on shuffled options.

    Args:
        source: local JSONL/JSON/Parquet file in the hub schema (overrides the hub dataset).
        limit: first N questions (None: all 198).
        n, temperature, top_p, max_tokens, seed: sampling (paper: avg@3, 0.6, 0.95, 32768).
        group: the task's group for aggregates.
        instruction: appended after the options.
        name: task name in metric keys.
    """

    version = 1

    def __init__(
        self,
        source: str | None = None,
        limit: int | None = None,
        n: int = 3,
        temperature: float = PAPER_TEMPERATURE,
        top_p: float = PAPER_TOP_P,
        max_tokens: int = PAPER_MAX_TOKENS,
        seed: int = 0,
        group: TaskGroup = "ood",
        instruction: str = CHOICE_INSTRUCTION,
        name: str = "gpqa_diamond",
    ) -> None:
        self.name, self.group, self.source, self.limit, self.instruction = (
            name,
            group,
            source,
            limit,
            instruction,
        )
        self.sampling = SamplingConfig(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed
        )
        self._items: list[EvalItem] | None = None

    def items(self) -> list[EvalItem]:
        if self._items is None:
            rows = benchmark_rows(self.source, HUB_ID, SPLIT, config=CONFIG, limit=self.limit)
            self._items = build_items(rows, self._item, "GPQA")
        return self._items

    def _item(self, i: int, row: Mapping[str, Any]) -> EvalItem:
        options, gold = shuffled_options(row)
        text = choice_prompt(str(row["Question"]), options, GPQA_LETTERS)
        return EvalItem(id=f"{self.name}:{i}", prompt=user_prompt(text, self.instruction), reference=gold)

    def score(self, response: str, reference: str) -> Score:
        return score_multiple_choice(response, reference, valid_letters=GPQA_LETTERS)
