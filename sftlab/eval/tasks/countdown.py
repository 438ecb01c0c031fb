"""Countdown eval task: held-out generated problems (disjoint from any training split with the same
seed), scored by exact arithmetic. Group `id` when training on Countdown; the paper uses it as a probe
of transfer from a toy game, so the group is configurable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sftlab.data.countdown import problem_from_row, prompt_text
from sftlab.data.countdown_regime import countdown_problems
from sftlab.data.example import PAPER_INSTRUCTION, user_prompt
from sftlab.data.sources import read_rows
from sftlab.eval.scorers.countdown import score_countdown
from sftlab.eval.task import EvalItem, TaskGroup
from sftlab.eval.types import SamplingConfig, Score


class CountdownTask:
    """Countdown problems from the reserved test pool (or a file).

    Args:
        num_problems: prompts per eval.
        seed: generator seed, the same as the data regime's.
        num_numbers, max_number, max_target: generator settings, the same as the data regime's.
        source: optional file/hub id of rows with numbers/target instead of generated problems.
        n, temperature, top_p, max_tokens: sampling; accuracy is avg@n.
        group: the task's group for aggregates.
        instruction: appended to the question (the paper's by default).
    """

    version = 1

    def __init__(
        self,
        num_problems: int = 64,
        seed: int = 0,
        num_numbers: Sequence[int] = (3, 4),
        max_number: int = 12,
        max_target: int = 100,
        source: str | None = None,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = 512,
        group: TaskGroup = "id",
        instruction: str = PAPER_INSTRUCTION,
        name: str = "countdown",
    ) -> None:
        self.name = name
        self.group = group
        self.num_problems = num_problems
        self.seed = seed
        self.generator = {
            "num_numbers": tuple(num_numbers),
            "max_number": max_number,
            "max_target": max_target,
        }
        self.source = source
        self.instruction = instruction
        self.sampling = SamplingConfig(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed
        )
        self._items: list[EvalItem] | None = None

    def items(self) -> list[EvalItem]:
        if self._items is None:
            if self.source is not None:
                problems = [(label, problem_from_row(row)) for label, row in read_rows(self.source, "test")]
                problems = problems[: self.num_problems]
            else:
                generated = countdown_problems("test", self.num_problems, seed=self.seed, **self.generator)
                problems = [(f"countdown:test:{i}", p) for i, p in enumerate(generated)]
            self._items = [
                EvalItem(
                    id=label, prompt=user_prompt(prompt_text(p), self.instruction), reference=p.to_reference()
                )
                for label, p in problems
            ]
        return self._items

    def score(self, response: str, reference: Mapping[str, Any]) -> Score:
        return score_countdown(response, reference)
