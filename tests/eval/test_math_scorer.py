r"""Math scorer: `VerifyOutcome` -> `Score` (value, extracted, error only for timeout/error, status detail).

The verdicts themselves are tested in test_math_verify.py; here a few long-CoT responses go through the
scorer API, one batch for the table.
"""

from __future__ import annotations

import pytest

from sftlab.eval.scorers.math import score_math, score_math_many
from sftlab.eval.types import Score

AIME = (
    "<think>\nWe need the number of ordered pairs. Casework on the parity of a: if a is even there are 102 "
    "choices, if odd another 102. Hmm, wait, I should make sure a = 0 is excluded... it is, so 204.\n"
    "</think>\n\nSumming both cases gives $102 + 102 = 204$.\n\n\\boxed{204}"
)
MATH500 = (
    "<think>\nConvert (0, 3) to polar: r = 3 and the point lies on the positive y-axis, so theta = pi/2. "
    "Maybe \\boxed{(3, 0)}? No, that is the x-axis.\n</think>\n\n"
    "The point is at distance 3 from the origin on the positive $y$-axis: $\\boxed{\\left(3, \\frac{\\pi}{2}\\right)}$"
)

# (id, response, reference, correct, extracted, status)
TABLE = [
    ("aime-integer", AIME, "204", True, "204", "correct"),
    ("aime-off-by-one", AIME, "205", False, "204", "wrong"),
    (
        "math500-tuple",
        MATH500,
        "\\left( 3, \\frac{\\pi}{2} \\right)",
        True,
        "\\left(3, \\frac{\\pi}{2}\\right)",
        "correct",
    ),
    ("thinking-box-ignored", MATH500, "(3, 0)", False, "\\left(3, \\frac{\\pi}{2}\\right)", "wrong"),
    ("gsm8k-no-box", "<think>\n8 * 9\n</think>\n\nThe answer is 72.", "72", True, "72", "correct"),
    ("clipped", "<think>\nLet me think about 204 ... \\boxed{204}", "204", False, None, "no_answer"),
]


@pytest.fixture(scope="module")
def table_scores() -> list[Score]:
    return score_math_many([case[1] for case in TABLE], [case[2] for case in TABLE])


@pytest.mark.parametrize(("index", "case"), list(enumerate(TABLE)), ids=[case[0] for case in TABLE])
def test_scores(table_scores, index, case) -> None:
    _, _, _, correct, extracted, status = case
    score = table_scores[index]
    assert (score.correct, score.extracted, score.details) == (correct, extracted, {"status": status})
    assert score.value == float(correct) and score.error is None


def test_score_math_agrees_with_the_batch(table_scores) -> None:
    assert score_math(AIME, "204") == table_scores[0]
    assert score_math("<think>never closed", "204") == Score(False, None, details={"status": "no_answer"})


@pytest.mark.timeout(60)
def test_a_timeout_is_an_error_with_the_reading_kept() -> None:
    score = score_math("<think>\nhuge\n</think>\n\\boxed{10^{10^{10}}}", "5", timeout_s=1.0)
    assert not score.correct and score.extracted == "10^{10^{10}}"
    assert score.details == {"status": "timeout"} and "1.0 s" in score.error


@pytest.mark.parametrize("reference", ["", "   ", 204, None])
def test_a_bad_reference_is_a_dataset_bug(reference) -> None:
    with pytest.raises(ValueError, match="gold answer as a non-empty string"):
        score_math(AIME, reference)


def test_one_reference_per_response() -> None:
    with pytest.raises(ValueError, match="2 responses and 1 references"):
        score_math_many([AIME, AIME], ["204"])
