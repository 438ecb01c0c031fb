"""Reasoning-behaviour phrase matching and the response metrics built on it."""

from __future__ import annotations

import pytest

from sftlab.eval.behaviours import behaviours
from sftlab.eval.response_stats import is_repetitive, response_stats, thinking_answer_tokens
from sftlab.eval.types import Generation

CASES = [
    ("Wait, that gives 12, not 14.", {"backtracking"}),
    ("Hmm, that's wrong. Let me go back to the equation.", {"backtracking"}),
    ("Actually, the area is 6.", {"backtracking"}),
    ("We await the result; nothing odd.", set()),  # "wait" inside "await" must not fire
    ("Let me check: 3 * 4 = 12.", {"verification"}),
    ("Plug back in: x = 2 gives 4 + 4 = 8. Double-check done.", {"verification"}),
    ("First, compute the sum. Then, divide by 3.", {"decomposition"}),
    ("Step 1: factor. Let me verify the roots.", {"decomposition", "verification"}),
    ("The answer is \\boxed{5}.", set()),
    (
        "Let me break this down into a sub-problem. Wait, let me reconsider.",
        {"decomposition", "backtracking"},
    ),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_behaviours(text: str, expected: set[str]) -> None:
    shown = behaviours(text)
    assert {name for name, on in shown.items() if on} == expected


def test_thinking_tokens_split_by_characters() -> None:
    text = "<think>" + "x" * 73 + "</think>" + "y" * 20  # </think> at char 80 of 108
    thinking, answer = thinking_answer_tokens(Generation(text, tuple(range(54)), "stop"))
    assert thinking == pytest.approx(54 * 80 / 108)
    assert thinking + answer == 54
    assert thinking_answer_tokens(Generation("<think>never closed", (1, 2), "length")) == (2.0, 0.0)
    assert thinking_answer_tokens(Generation("no thinking", (1, 2), "stop")) == (0.0, 2.0)


def test_repetition() -> None:
    loop = " ".join(f"w{i}" for i in range(20))
    assert is_repetitive(" ".join([loop] * 3))
    assert not is_repetitive(" ".join([loop] * 2))
    assert not is_repetitive(" ".join(f"w{i}" for i in range(200)))


def test_response_stats_new_keys_and_existing_keys() -> None:
    loop = " ".join(f"w{i}" for i in range(20))
    gens = [
        Generation("<think>Wait, let me check.</think> The answer is 4.", (1,) * 10, "stop"),
        Generation(" ".join([loop] * 3), (1,) * 30, "length"),
        Generation("", (), "error"),
        Generation("First, add. \\boxed{3}", (1,) * 5, "stop"),
    ]
    stats = response_stats(gens)
    for key in ("response_tokens_mean", "response_tokens_p50", "clip_rate", "generation_error_rate"):
        assert key in stats
    assert stats["clip_rate"] == 0.25
    assert stats["no_eos_rate"] == 0.5
    assert stats["repetition_rate"] == 0.25
    assert stats["behaviour/backtracking_rate"] == 0.25
    assert stats["behaviour/verification_rate"] == 0.25
    assert stats["behaviour/decomposition_rate"] == 0.25
    assert stats["thinking_tokens_mean"] + stats["answer_tokens_mean"] == pytest.approx(
        stats["response_tokens_mean"]
    )
    assert 0 < stats["thinking_tokens_mean"] < 10 / 4
