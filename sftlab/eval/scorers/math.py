r"""Score math answers (MATH500, AIME, GSM8K, OpenR1-Math) with math-verify.

The rules -- thinking stripped, the last `\boxed{}` of the answer part is the prediction (else
math-verify's own extraction), equivalence decided by math-verify's `verify(gold, prediction)` -- and the
worker pool that enforces a hard per-item timeout live in `sftlab.eval.math_verify`; this module turns its
`VerifyOutcome` into a `Score`. `Score.error` is set only for timeouts and verifier failures; a wrong answer
or a missing one is a verdict (`details["status"]` says which). Knows nothing about backends or Lightning.
"""

from __future__ import annotations

from collections.abc import Sequence

from sftlab.eval.answer_extraction import strip_thinking
from sftlab.eval.math_verify import VerifyOutcome, verify_answer, verify_answers
from sftlab.eval.types import Score

DEFAULT_TIMEOUT_S = 5.0  # math-verify's own default per comparison


def score_math(response: str, reference: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> Score:
    """Score one response against the gold answer string (e.g. "\\frac{14}{3}", "204").

    A reference that is not a non-empty string raises ValueError (a dataset bug). A response with no
    answer part (unclosed `<think>`) is scored here without a round trip to the pool.
    """
    _check_reference(reference)
    if not strip_thinking(response).strip():
        return to_score(VerifyOutcome("no_answer", None))
    return to_score(verify_answer(reference, response, timeout_s=timeout_s))


def score_math_many(
    responses: Sequence[str],
    references: Sequence[str],
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_workers: int | None = None,
) -> list[Score]:
    """`score_math` over pairs in one `verify_answers` batch; scores in input order."""
    if len(responses) != len(references):
        counts = f"{len(responses)} responses and {len(references)} references"
        raise ValueError(f"need one reference per response, got {counts}")
    for reference in references:
        _check_reference(reference)
    pairs = list(zip(references, responses, strict=True))
    return [to_score(o) for o in verify_answers(pairs, timeout_s=timeout_s, max_workers=max_workers)]


def to_score(outcome: VerifyOutcome) -> Score:
    error = outcome.error if outcome.status in ("timeout", "error") else None
    return Score(
        correct=outcome.correct, extracted=outcome.extracted, error=error, details={"status": outcome.status}
    )


def _check_reference(reference: object) -> None:
    if not (isinstance(reference, str) and reference.strip()):
        raise ValueError(
            f'a math reference must be the gold answer as a non-empty string (e.g. "\\\\frac{{1}}{{2}}" '
            f'or "204"), got {reference!r:.80} ({type(reference).__name__})'
        )
