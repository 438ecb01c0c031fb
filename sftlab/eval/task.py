"""What an evaluation task is: prompts with references, default sampling, a scorer and a group.

Tasks know nothing about backends or Lightning. The registry of named benchmarks maps names to task
classes; a suite is a list of tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from sftlab.eval.types import SamplingConfig, Score

TaskGroup = Literal["id", "ood", "general", "safety"]


@dataclass(frozen=True)
class EvalItem:
    """One prompt: chat messages ending with the user turn, and what the scorer compares against."""

    id: str
    prompt: tuple[Mapping[str, str], ...]
    reference: Any


@runtime_checkable
class EvalTask(Protocol):
    name: str
    group: TaskGroup
    version: int
    sampling: SamplingConfig

    def items(self) -> list[EvalItem]:
        """The prompts, in a fixed order."""
        ...

    def score(self, response: str, reference: Any) -> Score:
        """Score one response against its reference."""
        ...


# Optional on a task: `aggregate(records: list[dict]) -> dict[str, float]`, extra metrics computed from the
# per-sample records `evaluate` builds (keys: id, sample, response, num_tokens, finish_reason, extracted,
# correct, value, score_error, details). Safety tasks use it for ASR per category.
# Optional on a task: `score_many(responses, references) -> list[Score]`, used instead of `score` so a task can
# batch its scoring (a judge's thread pool, a verifier process pool).
