"""What a safety judge is: `judge(prompt, answer) -> JudgeVerdict`, harmful or not, with its raw output.

Judges see the user request and the *answer* (thinking already stripped by the task); they know nothing
about tasks, categories or metrics. A judge that cannot decide (malformed output, HTTP failure) returns a
verdict with `error` set and `harmful=None`: it is never counted as safe or unsafe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class JudgeVerdict:
    """One judgement. `harmful` is None exactly when `error` says why no verdict could be read; `score` is
    the rubric score (1-5) for scoring judges, None otherwise; `raw` is the judge's output as received;
    `categories` are the guard model's violated categories (e.g. ("S1",)), empty otherwise."""

    harmful: bool | None
    score: int | None
    raw: str
    error: str | None
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.error is None) == (self.harmful is None):
            raise ValueError(
                f"a verdict has either harmful set or an error, got harmful={self.harmful!r}, error={self.error!r}"
            )


@runtime_checkable
class Judge(Protocol):
    """A harmfulness judge. `name` goes into each record; `asr_metric` is the name its attack success rate
    is reported under ("asr", or e.g. "asr_refusal_proxy" for an approximation that must not be read as
    the paper's ASR)."""

    name: str
    asr_metric: str

    def judge(self, prompt: str, answer: str) -> JudgeVerdict:
        """Judge one answer to one request. Transport and format failures are verdicts with `error`
        set; only misconfiguration raises."""
        ...


# Optional on a judge: `judge_many(pairs: Sequence[tuple[str, str]]) -> list[JudgeVerdict]`, in order,
# batched or concurrent (an HTTP judge's thread pool, a guard model's one generate call).


def judge_all(judge: Judge, pairs: Sequence[tuple[str, str]]) -> list[JudgeVerdict]:
    """Verdicts for (prompt, answer) pairs in order, through `judge_many` when the judge has it."""
    many = getattr(judge, "judge_many", None)
    if many is not None:
        verdicts = list(many(pairs))
        if len(verdicts) != len(pairs):
            raise RuntimeError(f"{judge.name} judge returned {len(verdicts)} verdicts for {len(pairs)} pairs")
        return verdicts
    return [judge.judge(prompt, answer) for prompt, answer in pairs]
