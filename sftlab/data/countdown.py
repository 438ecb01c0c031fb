r"""The Countdown data regime: seeded problems, an exact solver, and verified search-trace chains of thought.

Countdown (as in TinyZero, github.com/Jiayi-Pan/TinyZero, `examples/data_preprocess/countdown.py`, and the
HF dataset `Jiayi-Pan/Countdown-Tasks-3to4`): given 3-4 numbers and a target, write an expression with
+ - * / and parentheses that uses each number exactly once and equals the target.

Everything here is a pure function of its arguments. Randomness comes only from `random.Random` seeded by
the caller (strings are seeded through SHA-512 by `random`, never through `hash()`), and every set is sorted
before it is iterated for output, so the same seed gives the same problems and traces in any process.

Arithmetic is exact. Reachability covers all binary expression trees (split the multiset in two, recurse);
the solver walks pairwise combinations keeping only moves after which the target is still reachable, so
it never backtracks. The chain of thought is a genuine trace: every step's arithmetic is exact, every dead
end shown really misses, and the boxed answer is checked with the eval scorer before it is returned.
This module knows nothing about tokenizers, torch or Lightning.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from math import comb, gcd
from typing import Any

from sftlab.eval.scorers.countdown import score_countdown

DEAD_END = "Dead end."
BACKTRACK = "Let me go back"
OVERSHOOT = "That overshoots"

_MAX_CONSECUTIVE_MISSES = 10_000  # draws in a row that give no new problem: the space is used up
_MAX_NUMBERS = 5  # reachability over 6+ numbers takes seconds per problem in pure Python


@dataclass(frozen=True)
class CountdownProblem:
    """Numbers (in the order shown to the model) and the target. `key` ignores order, for split disjointness."""

    numbers: tuple[int, ...]
    target: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "numbers", tuple(self.numbers))
        problems = []
        if len(self.numbers) < 2:
            problems.append(f"need at least 2 numbers, got numbers={self.numbers}")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.numbers):
            problems.append(f"numbers must be positive integers, got numbers={self.numbers}")
        if isinstance(self.target, bool) or not isinstance(self.target, int):
            problems.append(f"target must be an integer, got target={self.target!r}")
        if problems:
            raise ValueError("invalid Countdown problem: " + "; ".join(problems))

    @property
    def key(self) -> tuple[tuple[int, ...], int]:
        return tuple(sorted(self.numbers)), self.target

    def to_reference(self) -> dict[str, Any]:
        """The reference `score_countdown` expects."""
        return {"numbers": list(self.numbers), "target": self.target}


# ---------------------------------------------------------------- exact reachability and the solver


_Rational = tuple[int, int]  # (numerator, denominator > 0) in lowest terms: ~10x faster than Fraction here


def _q(n: int, d: int) -> _Rational:
    g = gcd(n, d) * (1 if d > 0 else -1)
    return n // g, d // g


def _results(a: _Rational, b: _Rational) -> list[_Rational]:
    """a + b, a - b, b - a, a * b, and a / b, b / a where defined."""
    (an, ad), (bn, bd) = a, b
    out = [_q(an * bd + bn * ad, ad * bd), _q(an * bd - bn * ad, ad * bd), _q(bn * ad - an * bd, ad * bd)]
    out.append(_q(an * bn, ad * bd))
    return out + ([_q(an * bd, ad * bn)] if bn else []) + ([_q(bn * ad, bd * an)] if an else [])


def _reachable(values: Sequence[Fraction | int], positive_integers: bool = False) -> frozenset[_Rational]:
    """Every value an expression using each of `values` exactly once can take. With `positive_integers`,
    only expressions whose every intermediate result is a positive integer (the readable ones)."""
    memo: dict[tuple[_Rational, ...], frozenset[_Rational]] = {}

    def rec(vals: tuple[_Rational, ...]) -> frozenset[_Rational]:
        if vals not in memo:
            # Odd masks put vals[0] on the left, so each split comes once; the set drops the repeats that
            # equal numbers cause.
            splits = {tuple(tuple(v for i, v in enumerate(vals) if (m >> i & 1) == side) for side in (1, 0))
                      for m in range(1, (1 << len(vals)) - 1, 2)}  # fmt: skip
            found = set(vals) if len(vals) == 1 else set()
            for left, right in splits:
                for a in rec(left):
                    for b in rec(right):
                        found.update(
                            r for r in _results(a, b) if not positive_integers or (r[1] == 1 and r[0] > 0)
                        )
            memo[vals] = frozenset(found)
        return memo[vals]

    start = tuple(sorted((Fraction(v).numerator, Fraction(v).denominator) for v in values))
    return rec(start) if not positive_integers or all(d == 1 and n > 0 for n, d in start) else frozenset()


def _can_reach(values: Sequence[Fraction | int], target: int, positive_integers: bool) -> bool:
    return (target, 1) in _reachable(values, positive_integers)


@lru_cache(maxsize=1 << 16)
def _targets(sorted_numbers: tuple[int, ...], min_target: int, max_target: int) -> tuple[int, ...]:
    reach = _reachable(sorted_numbers)
    return tuple(sorted(n for n, d in reach if d == 1 and min_target <= n <= max_target))


@dataclass(frozen=True)
class _Node:
    """A sub-expression: its value, its text, its precedence (3 atom, 2 * /, 1 + -), its leaves in order."""

    value: Fraction
    text: str
    prec: int
    leaves: tuple[int, ...]


_OPS = {"+": (operator.add, 1), "-": (operator.sub, 1), "*": (operator.mul, 2), "/": (operator.truediv, 2)}


def _combine(a: _Node, op: str, b: _Node) -> _Node | None:
    """`a op b` with only the parentheses the meaning needs: a - (b + c), a / (b * c), (a + b) * c."""
    if op == "/" and b.value == 0:
        return None
    fn, prec = _OPS[op]
    left = a.text if a.prec >= prec else f"({a.text})"
    right_needs = b.prec <= prec if op in "-/" else b.prec < prec
    right = f"({b.text})" if right_needs else b.text
    return _Node(fn(a.value, b.value), f"{left} {op} {right}", prec, a.leaves + b.leaves)


@dataclass(frozen=True)
class _Move:
    line: str  # "12 * 3 = 36" (str(Fraction) writes 36, or 8/3)
    state: tuple[_Node, ...]  # the numbers left after the move, the new one first


def _moves(nodes: tuple[_Node, ...], positive_integers: bool) -> list[_Move]:
    """All ways to combine two of `nodes`; commutative ops once, larger operand first."""
    moves = []
    for i in range(len(nodes)):
        for j in range(i + 1, len(nodes)):
            rest = tuple(n for k, n in enumerate(nodes) if k not in (i, j))
            big, small = (nodes[i], nodes[j]) if nodes[i].value >= nodes[j].value else (nodes[j], nodes[i])
            for a, op, b in ((big, "+", small), (big, "*", small), (big, "-", small), (small, "-", big),
                             (big, "/", small), (small, "/", big)):  # fmt: skip
                node = _combine(a, op, b)
                if node is None or (positive_integers and (node.value <= 0 or node.value.denominator != 1)):
                    continue
                moves.append(_Move(f"{a.value} {op} {b.value} = {node.value}", (node, *rest)))
    return moves


def _leaves(numbers: Sequence[int]) -> tuple[_Node, ...]:
    return tuple(_Node(Fraction(n), str(n), 3, (n,)) for n in numbers)


def _walk(
    nodes: tuple[_Node, ...], target: int, rng: random.Random | None, positive_integers: bool
) -> list[_Move] | None:
    """A path of moves from `nodes` to the target, or None; moves tried in `rng` order (or the fixed order
    without it). Each move keeps the target reachable, so the walk never backtracks."""
    if not _can_reach([n.value for n in nodes], target, positive_integers):
        return None
    path = []
    while len(nodes) > 1:
        moves = _moves(nodes, positive_integers)
        if rng is not None:
            rng.shuffle(moves)
        move = next(m for m in moves if _can_reach([n.value for n in m.state], target, positive_integers))
        path.append(move)
        nodes = move.state
    return path


def solve(numbers: Sequence[int], target: int) -> str | None:
    """A readable expression over `numbers` (each once) equal to `target`, e.g. `(7 - 3) * 12 + 2`, or None.

    Positive-integer intermediate steps are preferred; fractions and negatives are used only when needed.
    """
    leaves = _leaves(numbers)
    path = _walk(leaves, target, None, True) or _walk(leaves, target, None, False)
    return None if path is None else path[-1].state[0].text


# ---------------------------------------------------------------- problems and splits


def generate_problems(
    count: int,
    *,
    seed: int,
    num_numbers: Sequence[int] = (3, 4),
    max_number: int = 12,
    max_target: int = 100,
    min_target: int = 1,
) -> list[CountdownProblem]:
    """`count` distinct (by key), solvable problems. Each draw picks how many numbers (uniform over
    `num_numbers`), the numbers (uniform in 1..max_number, repeats allowed), then the target uniformly among
    the integers in [min_target, max_target] they can reach. Draws do not depend on `count`, so a larger
    count extends a smaller one (same seed, same prefix)."""
    sizes_ok = bool(num_numbers) and all(2 <= n <= _MAX_NUMBERS for n in num_numbers)
    checks = [
        (isinstance(count, int) and count >= 0, f"count must be an integer >= 0, got {count=}"),
        (sizes_ok, f"num_numbers must be a non-empty list of 2..{_MAX_NUMBERS}, got {num_numbers=}"),
        (max_number >= 1, f"max_number must be >= 1, got {max_number=}"),
        (min_target <= max_target, f"min_target must be <= max_target, got {min_target=}, {max_target=}"),
    ]
    if problems := [message for ok, message in checks if not ok]:
        raise ValueError("cannot generate Countdown problems: " + "; ".join(problems))
    choices = sorted(set(num_numbers))
    multisets = sum(comb(max_number + n - 1, n) for n in choices)
    if count > multisets * (max_target - min_target + 1):
        raise ValueError(
            f"count={count} exceeds the {multisets} number multisets x {max_target - min_target + 1} targets "
            "this configuration allows; raise max_number or max_target, or add sizes to num_numbers"
        )
    out: list[CountdownProblem] = []
    rng, seen, misses = random.Random(seed), set(), 0
    while len(out) < count:
        numbers = tuple(rng.randint(1, max_number) for _ in range(rng.choice(choices)))
        targets = _targets(tuple(sorted(numbers)), min_target, max_target)
        problem = CountdownProblem(numbers, rng.choice(targets)) if targets else None
        if problem is None or problem.key in seen:
            misses += 1
            if misses >= _MAX_CONSECUTIVE_MISSES:
                raise ValueError(
                    f"found only {len(out)} of count={count} distinct solvable problems: {misses} draws in a row "
                    f"gave nothing new, so num_numbers={choices}, {max_number=}, targets {min_target}..{max_target} "
                    "is too small a space; raise max_number or max_target"
                )
            continue
        misses = 0
        seen.add(problem.key)
        out.append(problem)
    return out


def make_splits(
    *, train: int, validation: int, test: int, seed: int, **generator_kwargs: Any
) -> dict[str, list[CountdownProblem]]:
    """Disjoint (by key) train/validation/test splits from one seeded stream, cut test first: growing
    `train` leaves test and validation unchanged, so evaluations stay comparable across data sizes."""
    sizes = {"train": train, "validation": validation, "test": test}
    bad = [f"{name}={size!r}" for name, size in sizes.items() if not isinstance(size, int) or size < 0]
    if bad:
        raise ValueError(f"split sizes must be integers >= 0, got {', '.join(bad)}")
    stream = generate_problems(train + validation + test, seed=seed, **generator_kwargs)
    return {
        "test": stream[:test],
        "validation": stream[test : test + validation],
        "train": stream[test + validation :],
    }


_NUMBER_KEYS = ("numbers", "nums", "Numbers")
_TARGET_KEYS = ("target", "Target")


def problem_from_row(row: Mapping[str, Any]) -> CountdownProblem:
    """A problem from an external row: `numbers`/`nums`/`Numbers` (Countdown-Tasks-3to4 uses `nums`) and
    `target`/`Target`. Integer-like values (numpy ints from parquet) are accepted; floats and strings not."""
    numbers_key = next((k for k in _NUMBER_KEYS if k in row), "")
    target_key = next((k for k in _TARGET_KEYS if k in row), "")
    pairs = ((numbers_key, _NUMBER_KEYS), (target_key, _TARGET_KEYS))
    if missing := " and ".join(f"one of {keys}" for key, keys in pairs if not key):
        raise ValueError(f"Countdown row is missing {missing}; it has keys {sorted(row)}")
    try:
        numbers = tuple(operator.index(n) for n in row[numbers_key])
        target = operator.index(row[target_key])
    except TypeError:
        raise ValueError(
            f"Countdown row needs integer numbers and target, got {numbers_key}={row[numbers_key]!r}, "
            f"{target_key}={row[target_key]!r}"
        ) from None
    return CountdownProblem(numbers, target)


def prompt_text(problem: CountdownProblem) -> str:
    """The user-turn question, worded after TinyZero's countdown prompt. The paper's instruction suffix
    ("Please reason step by step, ...\\boxed{}.") is added by the data pipeline, not here."""
    return (
        f"Using the numbers {list(problem.numbers)}, create an equation that equals {problem.target}. "
        "You can use +, -, *, / and parentheses, and each number must be used exactly once."
    )


# ---------------------------------------------------------------- the chain of thought


def _listing(nodes: Sequence[_Node] | Sequence[int]) -> str:
    return ", ".join(str(n.value if isinstance(n, _Node) else n) for n in nodes)


def _random_attempt(start: tuple[_Node, ...], prefix: list[_Move], rng: random.Random) -> list[_Move]:
    """Continue `prefix` (a backtrack point of the previous attempt) with random readable moves to the end."""
    path = list(prefix)
    nodes = path[-1].state if path else start
    while len(nodes) > 1:
        path.append(rng.choice(_moves(nodes, positive_integers=True)))
        nodes = path[-1].state
    return path


def _solution(
    start: tuple[_Node, ...], previous: list[_Move], target: int, rng: random.Random
) -> list[_Move]:
    """Backtrack like depth-first search: keep the longest prefix of the last attempt from which the target
    is still reachable with readable steps, and finish from there; else start over (fractions if needed)."""
    for depth in range(len(previous) - 1, 0, -1):
        path = _walk(previous[depth - 1].state, target, rng, positive_integers=True)
        if path is not None:
            return previous[:depth] + path
    path = _walk(start, target, rng, True) or _walk(start, target, rng, False)
    if path is None:
        raise ValueError(
            f"no expression over {_listing(start)} makes {target}; cannot write its chain of thought"
        )
    return path


def _render(path: list[_Move], previous: list[_Move] | None, target: int) -> str:
    shared = 0
    if previous is not None:
        # Never the whole path: attempts are distinct and all run to a single number.
        while shared < min(len(path), len(previous)) - 1 and path[shared].line == previous[shared].line:
            shared += 1
    if previous is None:
        text = f"Try {path[0].line}."
    elif shared == 0:
        text = f"{BACKTRACK} and try {path[0].line}."
    else:
        text = f"{BACKTRACK} to {_listing(path[shared - 1].state)} and try {path[shared].line} instead."
    rest = [m.line for m in path[shared + 1 :]]
    if rest:
        text += " Then " + ", then ".join(rest) + "."
    value = path[-1].state[0].value
    if value == target:
        return f"{text} That is {target}."
    verdict = f"{OVERSHOOT} {target}" if value > target else f"That falls short of {target}"
    return f"{text} {verdict}. {DEAD_END}"


def write_chain_of_thought(problem: CountdownProblem, *, seed: int, max_attempts: int = 3) -> str:
    r"""A verified search trace for `problem`: `<think>` random attempts in seeded order (at most
    `max_attempts` dead ends, each really failing), backtracking, the solution with a step-by-step check,
    `</think>`, a one-line summary and `\boxed{expression}`. Deterministic for (problem, seed).

    Raises ValueError when the problem has no solution.
    """
    if max_attempts < 0:
        raise ValueError(f"max_attempts must be >= 0, got max_attempts={max_attempts}")
    numbers, target = problem.numbers, problem.target
    start = _leaves(numbers)
    rng = random.Random(f"countdown-cot:{seed}:{numbers}:{target}")
    attempts: list[list[_Move]] = []
    tried: set[tuple[str, ...]] = set()
    draws = 0
    while len(attempts) < max_attempts and draws < 10 * max_attempts:
        draws += 1
        # Half the time start over, else go back to a random earlier step of the last attempt.
        prefix = attempts[-1][: rng.randrange(len(attempts[-1]))] if attempts and rng.random() < 0.5 else []
        path = _random_attempt(start, prefix, rng)
        signature = tuple(m.line for m in path)
        if signature not in tried:
            tried.add(signature)
            attempts.append(path)
            if path[-1].state[0].value == target:
                break
    if not attempts or attempts[-1][-1].state[0].value != target:
        attempts.append(_solution(start, attempts[-1] if attempts else [], target, rng))
    lines = [f"We need {target} from {_listing(numbers)}."]
    for k, path in enumerate(attempts):
        lines.append(_render(path, attempts[k - 1] if k else None, target))
    answer = attempts[-1][-1].state[0]
    lines.append(
        f"Check: {', '.join(m.line for m in attempts[-1])}. Uses {_listing(answer.leaves)} once each. Correct."
    )
    response = (
        "<think>\n" + "\n".join(lines) + "\n</think>\n\n"
        f"{answer.text} = {target}, using each number exactly once.\n\n\\boxed{{{answer.text}}}"
    )
    score = score_countdown(response, problem.to_reference())
    if not score.correct:  # an invariant of this module, checked with the same scorer eval uses
        raise RuntimeError(f"internal error: the trace for {problem} does not score correct: {score}")
    return response
