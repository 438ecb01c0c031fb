"""The Countdown long-CoT data regime (`countdown_cot`): generated problems with verified search traces,
or an external file of `Numbers`/`Target` rows whose traces are written by the same solver.

Held-out problems come first in the seeded stream and in fixed-size pools (`HELD_OUT`), so the eval
task's test problems never appear in training whatever the training size, as long as both use the same
seed and generator settings (the quickstart links them).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from sftlab.data.countdown import (
    CountdownProblem,
    make_splits,
    problem_from_row,
    prompt_text,
    write_chain_of_thought,
)
from sftlab.data.countdown_backward import write_backward_chain_of_thought
from sftlab.data.example import PAPER_INSTRUCTION, DataError, Example, user_prompt
from sftlab.data.regime import Split
from sftlab.data.sources import read_rows

# Problems reserved for evaluation at the head of the generated stream.
HELD_OUT = {"test": 1000, "validation": 500}


def countdown_problems(
    split: Split,
    count: int,
    *,
    seed: int,
    num_numbers: Sequence[int] = (3, 4),
    max_number: int = 12,
    max_target: int = 100,
) -> list[CountdownProblem]:
    """`count` problems of a split; test and validation come from the reserved pools."""
    if split != "train" and count > HELD_OUT[split]:
        raise ValueError(f"at most {HELD_OUT[split]} {split} problems are reserved, got count={count}")
    splits = make_splits(
        train=count if split == "train" else 0,
        validation=HELD_OUT["validation"],
        test=HELD_OUT["test"],
        seed=seed,
        num_numbers=tuple(num_numbers),
        max_number=max_number,
        max_target=max_target,
    )
    return splits[split][:count]


class CountdownRegime:
    """Countdown-CoT data.

    Args:
        train_size: generated training problems (ignored when `source` is set).
        validation_size: held-out problems for teacher-forced validation loss.
        seed: generator seed; the eval task must use the same one (disjoint held-out pools).
        num_numbers: how many numbers per problem (3-4 as in Countdown-Tasks-3to4).
        max_number: numbers are drawn from 1..max_number.
        max_target: targets are at most this.
        max_attempts: dead ends shown in each `search` trace before the solution (trace length knob).
        trace: "search" = random attempts, dead ends, backtracking, then the solution and a check;
            "backward" = systematic backward chaining from the target (every step local, so a small model
            can learn it from few examples; see `sftlab.data.countdown_backward`). 3-number problems keep
            backward traces short (~190 SmolLM2 tokens); 4-number ones search sub-goals and often run past 1,000.
        source: optional JSONL/Parquet file or hub id of rows with numbers/target fields.
        instruction: text appended to the question (the paper's by default; "" for none).
    """

    name = "countdown_cot"

    def __init__(
        self,
        train_size: int = 1000,
        validation_size: int = 64,
        seed: int = 0,
        num_numbers: Sequence[int] = (3, 4),
        max_number: int = 12,
        max_target: int = 100,
        max_attempts: int = 3,
        trace: Literal["search", "backward"] = "search",
        source: str | None = None,
        instruction: str = PAPER_INSTRUCTION,
    ) -> None:
        if trace not in ("search", "backward"):
            raise ValueError(f'trace must be "search" or "backward", got trace={trace!r}')
        self.train_size = train_size
        self.validation_size = validation_size
        self.seed = seed
        self.generator = {
            "num_numbers": tuple(num_numbers),
            "max_number": max_number,
            "max_target": max_target,
        }
        self.max_attempts = max_attempts
        self.trace = trace
        self.source = source
        self.instruction = instruction

    def problems(self, split: Split) -> list[tuple[str, CountdownProblem]]:
        if self.source is not None and split == "train":
            out = []
            for label, row in read_rows(self.source, "train"):
                try:
                    out.append((label, problem_from_row(row)))
                except ValueError as exc:
                    raise DataError(f"{label}: {exc}") from None
            return out
        count = self.train_size if split == "train" else self.validation_size
        return [
            (f"countdown:{split}:{i}", p)
            for i, p in enumerate(countdown_problems(split, count, seed=self.seed, **self.generator))
        ]

    def load(self, split: Split) -> list[Example]:
        examples = []
        for label, problem in self.problems(split):
            examples.append(
                Example(
                    prompt=user_prompt(prompt_text(problem), self.instruction),
                    response=self.chain_of_thought(problem),
                    source=label,
                    reference=problem.to_reference(),
                )
            )
        return examples

    def chain_of_thought(self, problem: CountdownProblem) -> str:
        if self.trace == "backward":
            return write_backward_chain_of_thought(problem)
        return write_chain_of_thought(problem, seed=self.seed, max_attempts=self.max_attempts)
