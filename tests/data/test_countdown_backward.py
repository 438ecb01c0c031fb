"""The backward-chaining Countdown trace: every line's arithmetic, every "no" really failing, the first "yes"
really the first hit, the fallback for pair-pair splits, and the regime option that selects it."""

from __future__ import annotations

import re
from collections import Counter
from fractions import Fraction

import pytest

from sftlab.data.countdown import DEAD_END, CountdownProblem, generate_problems
from sftlab.data.countdown_backward import write_backward_chain_of_thought
from sftlab.data.countdown_regime import CountdownRegime
from sftlab.eval.answer_extraction import split_thinking
from sftlab.eval.scorers.countdown import score_countdown

EQUATION = r"(\d+) ([-+*/]) (\d+) = (\d+)"
BLOCK = re.compile(rf"^Last number (\d+): ((?:{EQUATION}, )*{EQUATION})\.(.*)$")
TRY = re.compile(rf" {EQUATION} (no|yes)\.")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


def pair_values(x: int, y: int) -> list[Fraction]:
    big, small = max(x, y), min(x, y)
    values = [Fraction(big + small), Fraction(big - small), Fraction(big * small), Fraction(big, small)]
    return list(dict.fromkeys(v for v in values if v > 0 and v.denominator == 1))


def last_step_candidates(target: int, n: int, largest: Fraction) -> list[Fraction]:
    """The needed values in the trace's order, as the docstring defines them (independent re-derivation)."""
    t, v = Fraction(target), Fraction(n)
    out = [t - v, t + v, t / v, t * v, v - t, v / t]
    return [r for r in out if r > 0 and r.denominator == 1 and r <= largest]


def replay_three(problem: CountdownProblem, trace: str) -> int:
    """Check a 3-number trace line by line; return how many blocks were dead ends."""
    thinking, _ = split_thinking(trace)
    lines = thinking.strip().splitlines()
    target = problem.target
    assert (
        lines[0]
        == f"We need {target} from {', '.join(map(str, problem.numbers))}. Work backwards from {target}."
    )
    assert lines[-1].startswith("Check: ") and lines[-1].endswith("once each. Correct.")
    dead_ends, seen = 0, set()
    blocks = lines[1:-1]
    for k, line in enumerate(blocks):
        match = BLOCK.match(line)
        assert match, line
        n = int(match.group(1))
        pairs = re.findall(EQUATION, match.group(2))
        x, y = int(pairs[0][0]), int(pairs[0][2])
        assert Counter([n, x, y]) == Counter(problem.numbers), line  # one number last, the other two paired
        assert n not in seen, f"the same last number twice: {line}"
        seen.add(n)
        made = pair_values(x, y)
        for a, op, b, c in pairs:
            assert {int(a), int(b)} == {x, y} and OPS[op](Fraction(a), Fraction(b)) == Fraction(c), line
        assert [Fraction(c) for *_, c in pairs] == made, line
        tries = TRY.findall(match.group(match.lastindex))
        expected = last_step_candidates(target, n, max(made))
        for i, (a, op, b, r, verdict) in enumerate(tries):
            assert OPS[op](Fraction(a), Fraction(b)) == Fraction(r) == expected[i], line
            assert (verdict == "yes") == (Fraction(r) in made), line
            if verdict == "yes":
                assert i == len(tries) - 1 and k == len(blocks) - 1, "the trace stops at the first hit"
        if line.endswith(DEAD_END):
            assert len(tries) == len(expected) and all(t[4] == "no" for t in tries), line
            dead_ends += 1
        else:
            assert tries and tries[-1][4].startswith("yes"), line
    return dead_ends


@pytest.fixture(scope="module")
def three() -> list[CountdownProblem]:
    return generate_problems(300, seed=11, num_numbers=(3,))


def test_three_number_traces_replay_exactly_and_score_correct(three):
    dead_end_blocks = 0
    for problem in three:
        trace = write_backward_chain_of_thought(problem)
        assert score_countdown(trace, problem.to_reference()).correct
        if "Trying pairs in order instead" not in trace:
            dead_end_blocks += replay_three(problem, trace)
    assert dead_end_blocks > 50  # a real search: many traces try a number last and give it up


def test_three_number_problems_rarely_need_the_fallback(three):
    fallbacks = sum("Trying pairs in order instead" in write_backward_chain_of_thought(p) for p in three)
    assert fallbacks <= len(three) // 20


def test_worked_example():
    trace = write_backward_chain_of_thought(CountdownProblem((11, 8, 7), 81))
    thinking, answer = split_thinking(trace)
    assert thinking.strip().splitlines()[1:] == [
        "Last number 11: 8 + 7 = 15, 8 - 7 = 1, 8 * 7 = 56. Dead end.",  # 81 - 11 = 70 > 56: not worth a try
        "Last number 8: 11 + 7 = 18, 11 - 7 = 4, 11 * 7 = 77. 81 - 8 = 73 no. Dead end.",
        "Last number 7: 11 + 8 = 19, 11 - 8 = 3, 11 * 8 = 88. 81 - 7 = 74 no. 81 + 7 = 88 yes.",
        "Check: 11 * 8 = 88, 88 - 7 = 81. Uses 11, 8, 7 once each. Correct.",
    ]
    assert answer.strip().endswith("\\boxed{11 * 8 - 7}")


def test_four_numbers_search_sub_goals_and_fall_back_for_pair_pair_splits():
    nested = write_backward_chain_of_thought(CountdownProblem((7, 11, 7, 6), 2))
    assert "need 9 from 11, 7, 6." in nested and "So 12 = 7 / 7 + 11." in nested
    # (12 + 11) * (1 + 1) = 46 has no single number last with whole values: the solver's path is used.
    fallback = write_backward_chain_of_thought(CountdownProblem((1, 12, 1, 11), 46))
    assert "No single number can go last with whole numbers." in fallback
    for problem, trace in (
        (CountdownProblem((7, 11, 7, 6), 2), nested),
        (CountdownProblem((1, 12, 1, 11), 46), fallback),
    ):
        assert score_countdown(trace, problem.to_reference()).correct


def test_deterministic_and_unsolvable_is_an_error(three):
    assert [write_backward_chain_of_thought(p) for p in three[:10]] == [
        write_backward_chain_of_thought(p) for p in three[:10]
    ]
    with pytest.raises(ValueError, match="no expression over 1, 1, 1 makes 100"):
        write_backward_chain_of_thought(CountdownProblem((1, 1, 1), 100))


def test_regime_selects_the_trace_style():
    backward = CountdownRegime(train_size=5, num_numbers=[3], trace="backward").load("train")
    search = CountdownRegime(train_size=5, num_numbers=[3]).load("train")
    assert [e.prompt for e in backward] == [e.prompt for e in search]
    assert all("Work backwards from" in e.response for e in backward)
    assert not any("Work backwards from" in e.response for e in search)
    with pytest.raises(ValueError, match="trace='forward'"):
        CountdownRegime(trace="forward")
