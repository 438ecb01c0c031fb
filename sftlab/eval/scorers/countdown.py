r"""Score Countdown answers: does the boxed expression use each given number exactly once and hit the target?

The answer is the last `\boxed{...}` after the last `</think>` (the paper's convention, see
`answer_extraction`). The expression is read by a whitelist tokenizer and a recursive-descent parser and
evaluated with exact `Fraction` arithmetic; it is never handed to `eval` or `ast`. Model output is
untrusted, so every input is rejected in bounded time before any arithmetic can blow up:

* `**` and `^` are rejected (`9**9**9` would never finish);
* the raw boxed text is capped at `MAX_RAW_CHARS` and the normalised expression at `MAX_EXPRESSION_CHARS`
  (a Countdown answer over 3-6 small numbers is a few dozen characters);
* parentheses may nest at most `MAX_DEPTH` deep (this also bounds the parser's recursion);
* an integer literal may have at most `MAX_DIGITS` digits.

Rules this scorer fixes (documented because they decide correctness):

* **Unary minus/plus is rejected.** Countdown allows only binary + - * /; a leading `-3` would use a number
  the puzzle does not give. For positive targets it adds no reachable value anyway (any expression with
  unary minus can be rewritten without it up to sign).
* **With an `=`, the left-hand side is scored** (`(7-3)*12+2=50` scores `(7-3)*12+2`); the right-hand
  side is ignored, so `50 = ...` is read as the bare expression `50` and fails the number check.
* Only integer literals; decimals, variables and implicit multiplication (`2(3+4)`) are parse errors.

`Score.error` is set only when the expression could not be evaluated (no box is not an error; a parse
failure, a cap or a division by zero is). A well-formed but wrong answer has `error=None` and says why in
`details["reason"]`. This module knows nothing about backends, Lightning or how problems are generated.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from sftlab.eval.answer_extraction import last_boxed, strip_thinking
from sftlab.eval.types import Score

MAX_RAW_CHARS = 1000
MAX_EXPRESSION_CHARS = 200
MAX_DEPTH = 10
MAX_DIGITS = 9

# LaTeX and Unicode spellings of the four operators and of grouping, as models write them in \boxed{}.
_REPLACEMENTS = (
    (r"\left", ""),
    (r"\right", ""),
    (r"\times", "*"),
    (r"\cdot", "*"),
    (r"\ast", "*"),
    (r"\div", "/"),
    ("×", "*"),
    ("·", "*"),
    ("∗", "*"),
    ("÷", "/"),
    ("−", "-"),
    ("–", "-"),
    (r"\,", " "),
    (r"\;", " "),
    (r"\:", " "),
    (r"\!", ""),
    (r"\ ", " "),
    (r"\quad", " "),
    ("$", ""),
    ("{", "("),
    ("}", ")"),
    ("[", "("),
    ("]", ")"),
)
_FRAC = re.compile(r"\\[dt]?frac\s*(?=\{)")
_TOKEN = re.compile(r"\s*(?:(\d+)|([-+*/()]))")
_COMMAND = re.compile(r"\\[A-Za-z]+")


class _Reject(Exception):
    """Internal: the expression is not a valid Countdown answer; the message says why."""


def _rewrite_fracs(text: str) -> str:
    r"""`\frac{A}{B}` -> `{A}/{B}` (braces become parentheses later). Unmatched braces are left as they are
    for the parser to report. Input is capped at MAX_RAW_CHARS, so the quadratic worst case is bounded."""
    while (match := _FRAC.search(text)) is not None:
        depth, i = 0, match.end()
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
            if depth == 0:
                break
        if depth != 0:
            return text[: match.start()] + text[match.end() :]
        text = text[: match.start()] + text[match.end() : i] + "/" + text[i:]
    return text


def normalize_expression(boxed: str) -> str:
    r"""Turn a boxed LaTeX/Unicode expression into plain ASCII arithmetic: `\left( 7 - 3 \right) \times 12`
    -> `( 7 - 3 ) * 12`. It does not validate; `parse_expression` does."""
    text = _rewrite_fracs(boxed)
    for old, new in _REPLACEMENTS:
        text = text.replace(old, new)
    return " ".join(text.split())


def _tokenize(text: str) -> list[str]:
    if "**" in text.replace(" ", ""):
        raise _Reject("`**` (power) is not allowed; use only + - * / and parentheses")
    if "^" in text:
        raise _Reject("`^` (power) is not allowed; use only + - * / and parentheses")
    tokens, pos, depth = [], 0, 0
    text = text.rstrip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            rest = text[pos:].lstrip()
            command = _COMMAND.match(rest)
            bad = f"LaTeX command {command.group()}" if command else f"character {rest[0]!r}"
            raise _Reject(
                f"unexpected {bad} at position {len(text) - len(rest)}; only integers, + - * / and parentheses are allowed"
            )
        number, op = match.groups()
        if number is not None and len(number) > MAX_DIGITS:
            raise _Reject(f"a {len(number)}-digit number exceeds the {MAX_DIGITS}-digit limit")
        if op == "(":
            depth += 1
            if depth > MAX_DEPTH:
                raise _Reject(f"parentheses nest deeper than {MAX_DEPTH} levels")
        elif op == ")":
            depth -= 1
            if depth < 0:
                raise _Reject("unbalanced parentheses: a `)` has no matching `(`")
        tokens.append(number if number is not None else op)
        pos = match.end()
    if depth:
        raise _Reject(f"unbalanced parentheses: {depth} `(` never closed")
    if not tokens:
        raise _Reject("the expression is empty")
    return tokens


class _Parser:
    """Recursive descent over expr := term (('+'|'-') term)*, term := factor (('*'|'/') factor)*,
    factor := INT | '(' expr ')'. Evaluates as it parses; recursion depth is bounded by MAX_DEPTH."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.numbers: list[int] = []

    def peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def parse(self) -> Fraction:
        value = self.expr()
        if self.peek() is not None:
            raise _Reject(
                f"unexpected {self.peek()!r} after a complete expression (implicit multiplication?)"
            )
        return value

    def expr(self) -> Fraction:
        value = self.term()
        while self.peek() in ("+", "-"):
            op = self.tokens[self.pos]
            self.pos += 1
            rhs = self.term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while self.peek() in ("*", "/"):
            op = self.tokens[self.pos]
            self.pos += 1
            rhs = self.factor()
            if op == "/" and rhs == 0:
                raise _Reject("division by zero")
            value = value * rhs if op == "*" else value / rhs
        return value

    def factor(self) -> Fraction:
        token = self.peek()
        self.pos += 1
        if token is None:
            raise _Reject("the expression ends where a number or `(` was expected")
        if token.isdigit():
            self.numbers.append(int(token))
            return Fraction(int(token))
        if token == "(":
            value = self.expr()
            if self.peek() != ")":
                raise _Reject(f"expected `)` but found {self.peek()!r}")
            self.pos += 1
            return value
        if token in ("-", "+"):
            raise _Reject(f"unary {token!r} is not allowed; each given number must be used as it is")
        raise _Reject(f"expected a number or `(` but found {token!r}")


def parse_expression(expression: str) -> tuple[Fraction, list[int]]:
    """Evaluate a normalised Countdown expression; return (value, the integer literals in order).

    Raises ValueError naming the problem for anything outside the grammar, over a cap, or dividing by zero.
    """
    if len(expression) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"expression is {len(expression)} characters, over the {MAX_EXPRESSION_CHARS} limit")
    try:
        parser = _Parser(_tokenize(expression))
        return parser.parse(), parser.numbers
    except _Reject as exc:
        raise ValueError(str(exc)) from None


def _reference(reference: Mapping[str, Any]) -> tuple[list[int], int]:
    missing = [key for key in ("numbers", "target") if key not in reference]
    if missing:
        raise ValueError(
            f"countdown reference is missing {missing}; got keys {sorted(reference)}; "
            'expected {"numbers": [...], "target": N} (CountdownProblem.to_reference())'
        )
    return [int(n) for n in reference["numbers"]], int(reference["target"])


def score_countdown(response: str, reference: Mapping[str, Any]) -> Score:
    r"""Score one response against `{"numbers": [...], "target": N}`; see the module docstring for the rules.

    `extracted` is the normalised boxed text (cut to MAX_EXPRESSION_CHARS + "…" when over the cap so
    logs stay small), or None when the answer part has no `\boxed{}`.
    """
    numbers, target = _reference(reference)
    details: dict[str, Any] = {"numbers": numbers, "target": target}
    boxed = last_boxed(strip_thinking(response))
    if boxed is None:
        return Score(correct=False, details={**details, "reason": "no \\boxed{} in the answer part"})
    if len(boxed) > MAX_RAW_CHARS:
        error = f"boxed answer is {len(boxed)} characters, over the {MAX_RAW_CHARS} limit; not evaluated"
        return Score(
            correct=False, extracted=boxed[:MAX_EXPRESSION_CHARS] + "…", error=error, details=details
        )
    normalized = normalize_expression(boxed)
    extracted = normalized
    if len(extracted) > MAX_EXPRESSION_CHARS:
        extracted = extracted[:MAX_EXPRESSION_CHARS] + "…"
    # With "=", score the left-hand side only (module docstring).
    expression = normalized.split("=", 1)[0].strip()
    details["expression"] = expression
    try:
        value, used = parse_expression(expression)
    except ValueError as exc:
        return Score(correct=False, extracted=extracted, error=str(exc), details=details)
    details.update(used=used, value=str(value))
    if Counter(used) != Counter(numbers):
        reason = f"uses {sorted(used)} but the numbers are {sorted(numbers)}; each must be used exactly once"
        return Score(correct=False, extracted=extracted, details={**details, "reason": reason})
    if value != target:
        reason = f"evaluates to {value}, not the target {target}"
        return Score(correct=False, extracted=extracted, details={**details, "reason": reason})
    return Score(correct=True, extracted=extracted, details=details)
