r"""`sftlab.eval.math_verify`: math-verify's verdicts on long-CoT responses, and the pool's timeouts.

The table is scored in one `verify_answers` batch (one pool start); the pool tests inject fake verifiers
from this module ("module:function"; spawned workers import it by the name pytest gave it) so that a hang
is certain: one sleeps (the soft, in-worker limit must stop it and the worker lives on), one also blocks
SIGALRM like C code that never returns to the interpreter (the parent must kill the pool).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from sftlab.eval.math_verify import HARD_GRACE_S, VerifyOutcome, verify_answer, verify_answers


def cot(thinking: str, answer: str) -> str:
    """A response the way the paper's models write it: thinking, then a summary with the final answer."""
    return f"<think>\n{thinking}\n</think>\n\n{answer}"


DICE = (
    "Okay, so I need the probability that a fair die shows an even number. The outcomes are 1 to 6 and "
    "2, 4, 6 are even, so that is 3 out of 6. Wait, let me double-check that I am not missing anything. "
    "No, 3/6 simplifies to 1/2."
)

# (id, gold, response, status, extracted)
TABLE = [
    (
        "answer-after-thinking",
        "\\frac{1}{2}",
        cot(
            DICE,
            "There are 3 even faces out of 6, so $P = \\frac{3}{6} = \\frac{1}{2}$.\n\n\\boxed{\\frac{1}{2}}",
        ),
        "correct",
        "\\frac{1}{2}",
    ),
    (
        "answer-only-inside-thinking",
        "7",
        cot(
            "Adding them up gives 3 + 4, so the answer is \\boxed{7}. Let me re-check.",
            "I re-checked the sum.",
        ),
        "no_answer",
        None,
    ),
    (
        "the-box-inside-thinking-does-not-count",
        "12",
        cot(
            "Counting rows and columns gives \\boxed{12}. Hmm, that double-counts the corner square twice.",
            "After removing the double-counted corner, there are 14 squares.\n\n\\boxed{14}",
        ),
        "wrong",
        "14",
    ),
    (
        "clipped-generation",
        "42",
        "<think>\nSo 6 times 7 is 42, giving \\boxed{42}. Now let me verify",
        "no_answer",
        None,
    ),
    (
        "several-boxes-last-wins",
        "5",
        cot(
            "x^2 - 8x + 15 = 0 has roots 3 and 5.",
            "Both $\\boxed{3}$ and 5 solve it, but $x>4$, so \\boxed{5}.",
        ),
        "correct",
        "5",
    ),
    (
        "several-boxes-earlier-one-is-not-the-answer",
        "3",
        cot(
            "x^2 - 8x + 15 = 0 has roots 3 and 5.",
            "Both $\\boxed{3}$ and 5 solve it, but $x>4$, so \\boxed{5}.",
        ),
        "wrong",
        "5",
    ),
    ("decimal-for-fraction", "\\frac{1}{2}", cot(DICE, "The probability is \\boxed{0.5}."), "correct", "0.5"),
    ("dfrac-shorthand", "\\frac{1}{2}", cot(DICE, "So $P = \\boxed{\\dfrac12}$."), "correct", "\\dfrac12"),
    (
        "equal-surds",
        "2\\sqrt{2}",
        cot("The diagonal of a 2-by-2 square is sqrt(4 + 4).", "The diagonal is \\boxed{\\sqrt{8}}."),
        "correct",
        "\\sqrt{8}",
    ),
    (
        "interval-as-membership",
        "[2, 5)",
        cot("Solve 2 <= x and x < 5.", "The solution set is \\boxed{x \\in [2,5)}."),
        "correct",
        "x \\in [2,5)",
    ),
    (
        "open-instead-of-half-open-interval",
        "[2, 5)",
        cot("Solve 2 <= x and x < 5.", "The solution set is \\boxed{(2, 5)}."),
        "wrong",
        "(2, 5)",
    ),
    (
        "set-in-another-order",
        "\\{1, 2, 3\\}",
        cot("The roots are 3, 2 and 1.", "\\boxed{\\{3, 2, 1\\}}"),
        "correct",
        "\\{3, 2, 1\\}",
    ),
    (
        "close-but-wrong",
        "\\frac{1}{3}",
        cot("1 divided by 3.", "It is about \\boxed{0.33}."),
        "wrong",
        "0.33",
    ),
    (
        "tuple-with-left-right",
        "(3, \\frac{\\pi}{2})",
        cot("r = 3 and theta = pi/2.", "\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}"),
        "correct",
        "\\left( 3, \\frac{\\pi}{2} \\right)",
    ),
    (
        "no-box-math-verify-fallback",
        "18",
        cot("6 rows of 3 chairs.", "Therefore, the final answer is $18$."),
        "correct",
        "18",
    ),
    (
        "no-answer-at-all",
        "18",
        cot("6 rows of 3 chairs.", "I was unable to determine the value."),
        "no_answer",
        None,
    ),
    ("empty-box", "18", cot("6 rows of 3 chairs.", "\\boxed{}"), "no_answer", None),
    ("gold-already-boxed", "\\boxed{204}", cot("AIME answer.", "\\boxed{204}"), "correct", "204"),
    (
        "gsm8k-dollars",
        "72",
        cot("She earns 8 * 9 = 72.", "She earns \\$72.\n\n\\boxed{\\$72}"),
        "correct",
        "\\$72",
    ),
    ("unreadable-gold", "", cot("Anything.", "\\boxed{3}"), "error", "3"),
]


@pytest.fixture(scope="module")
def table_outcomes() -> list[VerifyOutcome]:
    return verify_answers([(gold, response) for _, gold, response, _, _ in TABLE])


@pytest.mark.parametrize(("index", "case"), list(enumerate(TABLE)), ids=[case[0] for case in TABLE])
def test_verdicts(table_outcomes, index, case) -> None:
    _, _, _, status, extracted = case
    outcome = table_outcomes[index]
    assert (outcome.status, outcome.extracted) == (status, extracted), outcome
    assert outcome.correct == (status == "correct")
    assert (outcome.error is not None) == (status in ("timeout", "error"))


def test_verify_answer_is_one_item_of_the_same_pool() -> None:
    assert verify_answer("\\frac{1}{2}", cot(DICE, "\\boxed{0.5}")) == VerifyOutcome("correct", "0.5")


@pytest.mark.timeout(60)
def test_a_runaway_sympy_evaluation_is_a_timeout_and_the_rest_is_scored() -> None:
    # SymPy grinds on 10^(10^10) for minutes; math-verify's own alarm cannot run outside the main thread.
    start = time.monotonic()
    outcomes = verify_answers([("5", "\\boxed{10^{10^{10}}}"), ("4", "\\boxed{4}")], timeout_s=1.0)
    assert [o.status for o in outcomes] == ["timeout", "correct"]
    assert outcomes[0].extracted == "10^{10^{10}}" and "1.0 s" in outcomes[0].error
    assert time.monotonic() - start < 1.0 + HARD_GRACE_S + 5


# ---- fake verifiers, run in the workers -------------------------------------------------------------


def fake_verifier(gold: str, answer: str) -> VerifyOutcome:
    """Exact match, reporting the worker's pid as `extracted`; "SLEEP" sleeps, "HANG <file>" hangs deaf."""
    if answer.startswith("HANG"):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # like C code: the soft limit never fires
        Path(answer.split()[1]).write_text(str(os.getpid()))
        time.sleep(10**6)
    if answer == "SLEEP":
        time.sleep(10**6)
    if answer == "RAISE":
        raise RuntimeError("boom")
    return VerifyOutcome("correct" if answer == gold else "wrong", str(os.getpid()))


FAKE = f"{__name__}:fake_verifier"


@pytest.mark.timeout(60)  # a regression must fail here, not stall the suite
def test_a_verifier_deaf_to_signals_is_killed_and_the_batch_goes_on(tmp_path) -> None:
    pidfile = tmp_path / "hung.pid"
    pairs = [("a", "a"), ("b", f"HANG {pidfile}"), ("c", "c"), ("d", "x"), ("e", "e"), ("f", "f")]
    start = time.monotonic()
    outcomes = verify_answers(pairs, timeout_s=1.0, max_workers=3, verifier=FAKE)
    elapsed = time.monotonic() - start
    assert [o.status for o in outcomes] == ["correct", "timeout", "correct", "wrong", "correct", "correct"]
    assert "killed" in outcomes[1].error
    assert elapsed < 1.0 + HARD_GRACE_S + 15, elapsed  # pool start + deadline + rebuild, never "forever"
    hung = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while Path(f"/proc/{hung}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{hung}").exists(), "the hung worker is still alive"


@pytest.mark.timeout(60)
def test_a_sleeping_verifier_hits_the_soft_limit_and_the_worker_lives_on() -> None:
    outcomes = verify_answers(
        [("z", "z"), ("a", "SLEEP"), ("b", "b")], timeout_s=1.0, max_workers=1, verifier=FAKE
    )
    assert [o.status for o in outcomes] == ["correct", "timeout", "correct"]
    assert "killed" not in outcomes[1].error
    assert outcomes[0].extracted == outcomes[2].extracted  # the same worker process before and after


def test_a_failing_verifier_is_an_error_not_a_crash() -> None:
    outcomes = verify_answers([("a", "RAISE"), ("b", "b")], max_workers=1, verifier=FAKE)
    assert [o.status for o in outcomes] == ["error", "correct"]
    assert "RuntimeError: boom" in outcomes[0].error


def test_no_pairs_and_bad_arguments() -> None:
    assert verify_answers([]) == []
    with pytest.raises(ValueError) as excinfo:
        bad_pairs = [("1",), ("1", 2)]
        verify_answers(bad_pairs, timeout_s=0, max_workers=0, verifier="nocolon")  # type: ignore[arg-type]
    message = str(excinfo.value)
    for fragment in ("timeout_s=0", "max_workers=0", "'nocolon'", "pairs [0, 1]"):
        assert fragment in message
