r"""A second Countdown chain-of-thought style: systematic backward chaining from the target.

The search-trace style (`write_chain_of_thought` in `countdown.py`) shows random attempts and dead ends and
then jumps to the solution: the jump needs look-ahead a small model cannot learn from a few hundred
examples. This style makes every step local. The last operation of any expression combines one number
with what the others make, so for each number `n` (in the order given) the trace lists what the other
numbers make, then tries each way `n` can be the last step (`T - n`, `T + n`, `T / n`, `T * n`, `n - T`,
`n / T`; values larger than anything the others make are skipped), saying "no" until one needed value is
among them:

    Last number 7: 11 + 7 = 18, 11 - 7 = 4, 11 * 7 = 77. 28 - 7 = 21 no. 28 + 7 = 35 no. 28 / 7 = 4 yes.

With more than three numbers the needed value becomes a sub-goal ("need 21 from 11, 3, 2") searched the
same way. Only positive whole intermediate values are tried; when no such expression has a single number
last (a split into two pairs, or fractions needed), the trace says so and falls back to the solver's path.
Deterministic (no randomness); every line's arithmetic is exact and the boxed answer is checked with the
eval scorer before it is returned.
"""

from __future__ import annotations

from fractions import Fraction

from sftlab.data.countdown import (
    DEAD_END,
    CountdownProblem,
    _combine,
    _leaves,
    _listing,
    _Node,
    _walk,
)
from sftlab.eval.scorers.countdown import score_countdown

_Found = tuple[_Node, list[str]]  # the expression and its steps ("11 - 7 = 4"), innermost first


def _num(value: Fraction) -> str:
    return str(value)


def _pair_values(a: _Node, b: _Node) -> list[tuple[_Node, str]]:
    """What two numbers make with whole positive results (sum, difference, product, exact quotient), each
    value once."""
    big, small = (a, b) if a.value >= b.value else (b, a)
    out: dict[Fraction, tuple[_Node, str]] = {}
    for op in "+-*/":
        node = _combine(big, op, small)
        if node is not None and node.value > 0 and node.value.denominator == 1 and node.value not in out:
            out[node.value] = (node, f"{_num(big.value)} {op} {_num(small.value)} = {_num(node.value)}")
    return list(out.values())


def _last_steps(target: Fraction, n: _Node) -> list[tuple[Fraction, str, str]]:
    """Each way `n` can be the last step: (needed value r, the line computing r, how r and n combine)."""
    t, v = target, n.value
    candidates = [
        (t - v, f"{_num(t)} - {_num(v)}", "r+n"),
        (t + v, f"{_num(t)} + {_num(v)}", "r-n"),
        (t / v, f"{_num(t)} / {_num(v)}", "r*n"),
        (t * v, f"{_num(t)} * {_num(v)}", "r/n"),
        (v - t, f"{_num(v)} - {_num(t)}", "n-r"),
        (v / t, f"{_num(v)} / {_num(t)}", "n/r"),
    ]
    return [(r, line, how) for r, line, how in candidates if r > 0 and r.denominator == 1]


def _operands(r: _Node, n: _Node, how: str) -> tuple[_Node, str, _Node]:
    return {"r+n": (r, "+", n), "r-n": (r, "-", n), "r*n": (r, "*", n), "r/n": (r, "/", n),
            "n-r": (n, "-", r), "n/r": (n, "/", r)}[how]  # fmt: skip


def _join(r: _Node, n: _Node, how: str) -> tuple[_Node, str]:
    """The expression `r how n` and its step line ("7 * 4 = 28")."""
    a, op, b = _operands(r, n, how)
    node = _combine(a, op, b)
    assert node is not None  # r > 0 and n > 0: no division by zero
    return node, f"{_num(a.value)} {op} {_num(b.value)} = {_num(node.value)}"


def _search(target: Fraction, nodes: tuple[_Node, ...], lines: list[str]) -> _Found | None:
    """Backward chaining over `nodes` for `target`, appending the trace to `lines`."""
    if len(nodes) == 2:
        for node, step in _pair_values(*nodes):
            if node.value == target:
                return node, [step]
        return None
    tried: set[Fraction] = set()
    for i, n in enumerate(nodes):
        if n.value in tried:
            continue  # the same number again: the same block
        tried.add(n.value)
        rest = nodes[:i] + nodes[i + 1 :]
        found = _block(target, n, rest, lines)
        if found is not None:
            return found
    return None


def _block(target: Fraction, n: _Node, rest: tuple[_Node, ...], lines: list[str]) -> _Found | None:
    """One "Last number n" block: try each way `n` can be the last step."""
    if len(rest) == 2:
        made = _pair_values(*rest)
        text = f"Last number {_num(n.value)}: {', '.join(step for _, step in made)}."
        largest = max(m.value for m, _ in made)
        for r, line, how in _last_steps(target, n):
            if r > largest:
                continue  # more than the pair makes: not worth a line
            hit = next(((m, step) for m, step in made if m.value == r), None)
            if hit is None:
                text += f" {line} = {_num(r)} no."
                continue
            lines.append(f"{text} {line} = {_num(r)} yes.")
            node, step = _join(hit[0], n, how)
            return node, [hit[1], step]
        lines.append(f"{text} {DEAD_END}")
        return None
    lines.append(f"Last number {_num(n.value)}:")
    for r, line, how in _last_steps(target, n):
        lines.append(f"{line} = {_num(r)}: need {_num(r)} from {_listing(rest)}.")
        found = _search(r, rest, lines)
        if found is not None:
            node, step = _join(found[0], n, how)
            lines.append(f"So {_num(r)} = {found[0].text}.")
            return node, [*found[1], step]
    lines.append(f"Nothing works with {_num(n.value)} last. {DEAD_END}")
    return None


def write_backward_chain_of_thought(problem: CountdownProblem) -> str:
    r"""A verified backward-chaining trace for `problem`: `<think>` blocks per last number, a check line,
    `</think>`, a one-line summary and `\boxed{expression}`. Deterministic.

    Raises ValueError when the problem has no solution.
    """
    numbers, target = problem.numbers, problem.target
    start = _leaves(numbers)
    lines = [f"We need {target} from {_listing(numbers)}. Work backwards from {target}."]
    found = _search(Fraction(target), start, lines) if len(start) > 1 else None
    if found is None:
        path = _walk(start, target, None, True) or _walk(start, target, None, False)
        if path is None:
            raise ValueError(f"no expression over {_listing(numbers)} makes {target}; cannot write its trace")
        lines.append("No single number can go last with whole numbers. Trying pairs in order instead:")
        lines.append(", then ".join(m.line for m in path) + f". That is {target}.")
        found = path[-1].state[0], [m.line for m in path]
    answer, steps = found
    lines.append(f"Check: {', '.join(steps)}. Uses {_listing(answer.leaves)} once each. Correct.")
    response = (
        "<think>\n" + "\n".join(lines) + "\n</think>\n\n"
        f"{answer.text} = {target}, using each number exactly once.\n\n\\boxed{{{answer.text}}}"
    )
    score = score_countdown(response, problem.to_reference())
    if not score.correct:  # an invariant of this module, checked with the same scorer eval uses
        raise RuntimeError(
            f"internal error: the backward trace for {problem} does not score correct: {score}"
        )
    return response
