"""Countdown regime: seeded problems, the exact solver, splits, external rows, and genuine search traces."""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from collections import Counter
from fractions import Fraction

import pytest

from sftlab.data.countdown import (
    BACKTRACK,
    DEAD_END,
    OVERSHOOT,
    CountdownProblem,
    generate_problems,
    make_splits,
    problem_from_row,
    prompt_text,
    solve,
    write_chain_of_thought,
)
from sftlab.eval.answer_extraction import split_thinking
from sftlab.eval.scorers.countdown import score_countdown

VALUE = r"-?\d+(?:/\d+)?"
STEP = re.compile(rf"({VALUE}) ([-+*/]) ({VALUE}) = ({VALUE})")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


@pytest.fixture(scope="module")
def problems() -> list[CountdownProblem]:
    return generate_problems(200, seed=7)


@pytest.fixture(scope="module")
def traces(problems) -> list[str]:
    return [write_chain_of_thought(p, seed=3) for p in problems]


# ---------------------------------------------------------------- problems


def test_problem_validates_and_exposes_key_and_reference():
    problem = CountdownProblem([7, 3, 12, 2], 50)
    assert problem.numbers == (7, 3, 12, 2)
    assert problem.key == ((2, 3, 7, 12), 50)
    assert problem.key == CountdownProblem((2, 12, 3, 7), 50).key
    assert problem.to_reference() == {"numbers": [7, 3, 12, 2], "target": 50}
    with pytest.raises(
        ValueError, match=r"need at least 2 numbers.*positive integers.*target must be an integer"
    ):
        CountdownProblem((0,), 1.5)


def test_generation_is_deterministic_and_seed_dependent(problems):
    assert generate_problems(200, seed=7) == problems
    assert generate_problems(200, seed=8) != problems
    assert generate_problems(50, seed=7) == problems[:50]  # a larger count extends a smaller one


def test_generation_is_the_same_in_another_process_with_another_hash_seed(problems):
    code = (
        "from sftlab.data.countdown import generate_problems, write_chain_of_thought as w\n"
        "ps = generate_problems(20, seed=7)\n"
        "print(repr([(p.numbers, p.target) for p in ps]))\n"
        "print(repr(w(ps[0], seed=3)))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == repr([(p.numbers, p.target) for p in problems[:20]])
    assert lines[1] == repr(write_chain_of_thought(problems[0], seed=3))


def test_problems_are_distinct_in_range_and_reachable(problems):
    assert len({p.key for p in problems}) == len(problems)
    assert Counter(len(p.numbers) for p in problems).keys() == {3, 4}
    for p in problems:
        assert all(1 <= n <= 12 for n in p.numbers)
        assert 1 <= p.target <= 100
        expression = solve(p.numbers, p.target)
        assert expression is not None, p
        assert score_countdown(f"\\boxed{{{expression}}}", p.to_reference()).correct, (p, expression)


def test_generator_options_are_respected():
    got = generate_problems(30, seed=1, num_numbers=(3,), max_number=5, min_target=20, max_target=40)
    assert all(len(p.numbers) == 3 and max(p.numbers) <= 5 and 20 <= p.target <= 40 for p in got)


def test_generator_reports_every_bad_argument_at_once():
    with pytest.raises(ValueError) as info:
        generate_problems(-1, seed=0, num_numbers=(7,), max_number=0, min_target=5, max_target=1)
    for fragment in ("count=-1", "num_numbers=(7,)", "max_number=0", "min_target=5, max_target=1"):
        assert fragment in str(info.value)


def test_impossible_count_fails_fast_instead_of_looping():
    # Two numbers from {1, 2} and targets 1..4 give exactly 7 distinct problems.
    assert len(generate_problems(7, seed=0, num_numbers=(2,), max_number=2, max_target=4)) == 7
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"found only 7 of count=8 .*too small"):
        generate_problems(8, seed=0, num_numbers=(2,), max_number=2, max_target=4)
    with pytest.raises(ValueError, match=r"count=13 exceeds the 3 number multisets x 4 targets"):
        generate_problems(13, seed=0, num_numbers=(2,), max_number=2, max_target=4)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize(
    ("numbers", "target", "solvable"),
    [
        ((3, 7, 12, 2), 50, True),
        ((8, 8, 3, 3), 24, True),  # only 8 / (3 - 8 / 3): needs fractions
        ((1, 1, 1), 100, False),
        ((2, 2), 5, False),
        ((12, 2, 11), 13, True),
        ((5, 5, 5, 1), 24, True),  # (5 - 1 / 5) * 5
    ],
)
def test_solve(numbers, target, solvable):
    expression = solve(numbers, target)
    assert (expression is not None) == solvable
    if solvable:
        score = score_countdown(f"\\boxed{{{expression}}}", {"numbers": list(numbers), "target": target})
        assert score.correct, (expression, score)


def test_solve_prefers_readable_integer_steps():
    assert solve((3, 7, 12, 2), 50) == "12 * (7 - 3) + 2"


def test_splits_are_disjoint_deterministic_and_stable_when_train_grows():
    splits = make_splits(train=60, validation=20, test=20, seed=5)
    assert {k: len(v) for k, v in splits.items()} == {"train": 60, "validation": 20, "test": 20}
    keys = {name: {p.key for p in split} for name, split in splits.items()}
    assert not keys["train"] & keys["validation"]
    assert not keys["train"] & keys["test"]
    assert not keys["validation"] & keys["test"]
    assert make_splits(train=60, validation=20, test=20, seed=5) == splits
    bigger = make_splits(train=90, validation=20, test=20, seed=5)
    assert bigger["test"] == splits["test"] and bigger["validation"] == splits["validation"]
    assert make_splits(train=60, validation=20, test=20, seed=6)["test"] != splits["test"]
    with pytest.raises(ValueError, match="train=-1"):
        make_splits(train=-1, validation=0, test=0, seed=0)


@pytest.mark.parametrize(
    "row",
    [
        {"numbers": [3, 7, 12, 2], "target": 50},
        {"nums": [3, 7, 12, 2], "target": 50},
        {"Numbers": (3, 7, 12, 2), "Target": 50, "extra": "ignored"},
    ],
)
def test_problem_from_row_accepts_known_schemas(row):
    assert problem_from_row(row) == CountdownProblem((3, 7, 12, 2), 50)


def test_problem_from_row_accepts_numpy_integers():
    numpy = pytest.importorskip("numpy")
    row = {"nums": numpy.array([3, 7, 12, 2]), "target": numpy.int64(50)}
    assert problem_from_row(row) == CountdownProblem((3, 7, 12, 2), 50)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"nums": [1, 2]}, r"missing one of \('target', 'Target'\); it has keys \['nums'\]"),
        ({"target": 3}, r"missing one of \('numbers', 'nums', 'Numbers'\)"),
        ({"question": "?"}, r"missing one of \('numbers'.*and one of \('target'"),
        ({"nums": [1.5, 2], "target": 3}, r"integer numbers and target, got nums=\[1.5, 2\]"),
        ({"nums": "1 2", "target": 3}, "integer numbers and target"),
    ],
)
def test_problem_from_row_errors_name_the_problem(row, message):
    with pytest.raises(ValueError, match=message):
        problem_from_row(row)


def test_prompt_text_states_the_task_without_the_instruction_suffix():
    text = prompt_text(CountdownProblem((3, 7, 12, 2), 50))
    assert text == (
        "Using the numbers [3, 7, 12, 2], create an equation that equals 50. "
        "You can use +, -, *, / and parentheses, and each number must be used exactly once."
    )


# ---------------------------------------------------------------- chains of thought


def test_every_trace_is_scored_correct_by_the_scorer(problems, traces):
    for problem, trace in zip(problems, traces, strict=True):
        thinking, answer = split_thinking(trace)
        assert trace.startswith("<think>\n") and thinking.strip(), trace
        assert answer.strip().endswith("}") and "\\boxed{" in answer
        assert score_countdown(trace, problem.to_reference()).correct, trace


def _simulate(problem: CountdownProblem, trace: str, max_attempts: int) -> list[str]:
    """Replay every attempt line against the numbers it may use; return the outcomes. Fails on any
    arithmetic error, any number used that is not available, or a verdict that does not match."""
    thinking, _ = split_thinking(trace)
    lines = thinking.strip().splitlines()
    assert lines[0] == f"We need {problem.target} from {', '.join(map(str, problem.numbers))}."
    assert lines[-1].startswith("Check: ") and lines[-1].endswith("once each. Correct.")
    start = [Fraction(n) for n in problem.numbers]
    history: list[Counter] = []  # the states the previous attempt passed through, from the start
    steps: list[tuple[str, ...]] = []  # the steps that led to them
    outcomes, attempts = [], set()
    for index, line in enumerate(lines[1:-1]):
        back_to = re.match(rf"{BACKTRACK} to ((?:{VALUE}, )+{VALUE}) and try ", line)
        if back_to:
            state = [Fraction(v) for v in back_to.group(1).split(", ")]
            assert Counter(state) in history[1:], line  # an intermediate state the last attempt reached
            depth = history.index(Counter(state))
            history, steps = history[: depth + 1], steps[:depth]
        else:
            assert line.startswith("Try " if index == 0 else f"{BACKTRACK} and try "), line
            state = list(start)
            history, steps = [Counter(state)], []
        for step in STEP.findall(line):
            steps.append(step)
            a, op, b, c = step
            a, b, c = Fraction(a), Fraction(b), Fraction(c)
            assert OPS[op](a, b) == c, line
            state.remove(a)  # raises if the number is not available
            state.remove(b)
            state.append(c)
            history.append(Counter(state))
        assert len(state) == 1, line
        assert tuple(steps) not in attempts, f"attempt repeated: {line}"
        attempts.add(tuple(steps))
        if line.endswith(DEAD_END):
            assert state[0] != problem.target
            assert (OVERSHOOT in line) == (state[0] > problem.target), line
            outcomes.append("dead end")
        else:
            assert line.endswith(f"That is {problem.target}."), line
            assert state[0] == problem.target
            outcomes.append("solved")
    assert outcomes[-1] == "solved" and outcomes.count("solved") == 1
    assert outcomes.count("dead end") <= max_attempts
    return outcomes


def test_traces_are_genuine_searches(problems, traces):
    first_attempt_failed = 0
    for problem, trace in zip(problems, traces, strict=True):
        outcomes = _simulate(problem, trace, max_attempts=3)
        if outcomes[0] == "dead end":
            first_attempt_failed += 1
            assert DEAD_END in trace and BACKTRACK in trace
        else:
            assert DEAD_END not in trace and BACKTRACK not in trace
    assert first_attempt_failed > 150  # random first attempts rarely hit the target


def test_trace_check_line_repeats_the_solution_arithmetic(problems, traces):
    for problem, trace in zip(problems, traces, strict=True):
        check = split_thinking(trace)[0].strip().splitlines()[-1]
        steps = STEP.findall(check)
        assert len(steps) == len(problem.numbers) - 1
        assert Fraction(steps[-1][3]) == problem.target
        used = re.search(r"Uses (.+) once each", check).group(1).split(", ")
        assert Counter(map(int, used)) == Counter(problem.numbers)


def test_trace_is_deterministic_and_seed_dependent(problems, traces):
    assert [write_chain_of_thought(p, seed=3) for p in problems[:20]] == traces[:20]
    other = [write_chain_of_thought(p, seed=4) for p in problems[:20]]
    assert sum(a != b for a, b in zip(other, traces[:20], strict=True)) >= 15


@pytest.mark.parametrize("max_attempts", [0, 1, 5])
def test_max_attempts_bounds_the_dead_ends(problems, max_attempts):
    for problem in problems[:40]:
        trace = write_chain_of_thought(problem, seed=0, max_attempts=max_attempts)
        _simulate(problem, trace, max_attempts=max_attempts)
        assert score_countdown(trace, problem.to_reference()).correct


def test_traces_are_short_enough_for_cpu_training(traces):
    # ~4 characters per token: the median response should be ~60-150 tokens.
    assert 240 <= statistics.median(len(t) for t in traces) <= 600
    assert max(len(t) for t in traces) <= 1000


def test_trace_for_unsolvable_problem_or_bad_budget_is_an_error():
    with pytest.raises(ValueError, match="no expression over 1, 1, 1 makes 100"):
        write_chain_of_thought(CountdownProblem((1, 1, 1), 100), seed=0)
    with pytest.raises(ValueError, match="max_attempts=-1"):
        write_chain_of_thought(CountdownProblem((3, 7, 12, 2), 50), seed=0, max_attempts=-1)
