"""Value objects shared by the evaluation core: what a backend returns and what a scorer returns.

Backends produce `Generation`s and know nothing about scoring; scorers produce `Score`s and know nothing
about backends.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample: the paper uses temperature 0.6, top_p 0.95, stop on EOS (arXiv 2604.06628, §3)."""

    n: int = 1
    temperature: float = 0.6
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int = 0

    def __post_init__(self) -> None:
        problems = []
        if self.n < 1:
            problems.append(f"n must be >= 1, got n={self.n}")
        if self.temperature < 0:
            problems.append(f"temperature must be >= 0, got temperature={self.temperature}")
        if not 0 < self.top_p <= 1:
            problems.append(f"top_p must be in (0, 1], got top_p={self.top_p}")
        if self.max_tokens < 1:
            problems.append(f"max_tokens must be >= 1, got max_tokens={self.max_tokens}")
        if problems:
            raise ValueError("invalid sampling config: " + "; ".join(problems))


@dataclass(frozen=True)
class Generation:
    """One sampled completion. `finish_reason` is "length" when generation hit max_tokens (clipped)."""

    text: str
    token_ids: tuple[int, ...]
    finish_reason: FinishReason

    @property
    def num_tokens(self) -> int:
        return len(self.token_ids)


@dataclass(frozen=True)
class Score:
    """The verdict on one response.

    `value` is in [0, 1] (1.0 for a correct answer); `extracted` is what the scorer read as the answer
    (None when it found none); `error` says why scoring failed (timeout, parse error), never silently.
    """

    correct: bool
    extracted: str | None = None
    value: float | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.value is None:
            object.__setattr__(self, "value", 1.0 if self.correct else 0.0)
