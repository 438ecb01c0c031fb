r"""Countdown scorer on realistic model outputs: where the answer sits, how it is spelt, and what must fail."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest

from sftlab.eval.scorers.countdown import (
    MAX_DEPTH,
    MAX_DIGITS,
    MAX_EXPRESSION_CHARS,
    MAX_RAW_CHARS,
    normalize_expression,
    parse_expression,
    score_countdown,
)

REF = {"numbers": [3, 7, 12, 2], "target": 50}
THINK = "<think>\nTry 12 * 3 = 36. Then 36 + 7 = 43, then 43 + 2 = 45. That falls short of 50. Dead end.\n</think>\n\n"


@pytest.mark.parametrize(
    ("response", "extracted"),
    [
        (THINK + "(7 - 3) * 12 + 2 = 50.\n\n\\boxed{(7 - 3) * 12 + 2}", "(7 - 3) * 12 + 2"),
        (THINK + r"So the answer is $\boxed{(7-3) \times 12 + 2}$.", "(7-3) * 12 + 2"),
        (THINK + r"\boxed{(7-3) \times 12 + 2 = 50}", "(7-3) * 12 + 2 = 50"),
        (THINK + r"\boxed{\left(7 - 3\right) \cdot 12 + 2}", "(7 - 3) * 12 + 2"),
        (THINK + "\\boxed{(7−3)×12+2}", "(7-3)*12+2"),
        (THINK + r"\boxed{2 + 12 \times {(7 - 3)}}", "2 + 12 * ((7 - 3))"),
        (THINK + r"\boxed{[(7-3) * 12] + 2}", "((7-3) * 12) + 2"),
        (THINK + r"First \boxed{7 + 3 + 12 + 2}, no wait: \boxed{(7-3)*12+2}", "(7-3)*12+2"),
        ("\\boxed{(7-3)*12+2}", "(7-3)*12+2"),  # no thinking at all: the whole text is the answer
        ("<think>\\boxed{1+1}</think>\\boxed{12*(7-3)+2}", "12*(7-3)+2"),
    ],
)
def test_correct_answers(response, extracted):
    score = score_countdown(response, REF)
    assert score.correct, score
    assert score.value == 1.0
    assert score.error is None
    assert score.extracted == extracted


def test_fraction_answer_with_latex_frac_is_correct():
    score = score_countdown(
        r"</think> \boxed{\frac{8}{3 - \frac{8}{3}}}", {"numbers": [8, 8, 3, 3], "target": 24}
    )
    assert score.correct, score
    assert score.extracted == "(8)/(3 - (8)/(3))"


@pytest.mark.parametrize(
    ("response", "extracted", "reason"),
    [
        ("<think>... \\boxed{(7-3)*12+2}</think>\nThe answer is 50.", None, "no \\boxed{}"),
        ("<think>Try 7 - 3 = 4, then \\boxed{(7-3)*12+2", None, "no \\boxed{}"),  # clipped mid-thought
        ("The answer is (7-3)*12+2.", None, "no \\boxed{}"),
        (THINK + r"\boxed{(7-3)*12+2*1}", "(7-3)*12+2*1", "each must be used exactly once"),  # 1 not given
        (THINK + r"\boxed{(7-3)*12+3-1}", "(7-3)*12+3-1", "each must be used exactly once"),
        (THINK + r"\boxed{(12-3)*7-12-2+3}", "(12-3)*7-12-2+3", "each must be used exactly once"),  # 12 twice
        (THINK + r"\boxed{(7-3)*12}", "(7-3)*12", "each must be used exactly once"),  # 2 missing
        (THINK + r"\boxed{(7+3)*12+2}", "(7+3)*12+2", "evaluates to 122, not the target 50"),
        (THINK + r"\boxed{12 / (7 - 3) + 2}", "12 / (7 - 3) + 2", "evaluates to 5, not the target 50"),
        (THINK + r"\boxed{12 / 7 + 3 * 2}", "12 / 7 + 3 * 2", "evaluates to 54/7"),
        (THINK + r"\boxed{50 = (7-3)*12+2}", "50 = (7-3)*12+2", "each must be used exactly once"),  # lhs rule
    ],
)
def test_wrong_answers_have_a_reason_and_no_error(response, extracted, reason):
    score = score_countdown(response, REF)
    assert not score.correct
    assert score.value == 0.0
    assert score.error is None
    assert score.extracted == extracted
    assert reason in score.details["reason"]


@pytest.mark.parametrize(
    ("boxed", "error"),
    [
        ("(7-3)/(12-12)*2", "division by zero"),
        ("7/(3-3)+12-2", "division by zero"),
        ("-3 + 7 * 12 - 2 * 15", "unary '-' is not allowed"),
        ("(7-3)*12+(+2)", "unary '+' is not allowed"),
        ("9**9**9", "`**` (power) is not allowed"),
        ("9 * * 9", "`**` (power) is not allowed"),
        ("(7-3)*12+2^1", "`^` (power) is not allowed"),
        ("((7-3)*12+2", "unbalanced parentheses: 1 `(` never closed"),
        ("(7-3))*12+2", "unbalanced parentheses: a `)` has no matching `(`"),
        ("(" * (MAX_DEPTH + 1) + "7" + ")" * (MAX_DEPTH + 1) + "*3*12*2", f"deeper than {MAX_DEPTH}"),
        ("1" * (MAX_DIGITS + 1) + "*3*7*12*2", f"exceeds the {MAX_DIGITS}-digit limit"),
        ("+".join(["1"] * 120), f"over the {MAX_EXPRESSION_CHARS} limit"),
        ("(7-3)12+2", "implicit multiplication"),
        ("x*(7-3)+12+2", "unexpected character 'x' at position 0"),
        ("7.5*3+12+2", "unexpected character '.' at position 1"),
        (r"\sqrt{7}*3+12+2", "unexpected LaTeX command \\sqrt at position 0"),
        ("", "the expression is empty"),
        ("(7-3)*", "ends where a number or `(` was expected"),
        ("()", "expected a number or `(` but found ')'"),
    ],
)
def test_unevaluable_expressions_are_errors(boxed, error):
    score = score_countdown(THINK + "\\boxed{" + boxed + "}", REF)
    assert not score.correct
    assert score.error is not None
    assert error in score.error, score.error


@pytest.mark.parametrize(
    "boxed",
    [
        "9**9**9",
        "9**9**9**9**9",
        "(" * 100_000 + ")" * 100_000,
        "9" * 100_000,
        "+".join(["99999"] * 20_000),
        "(" * 150 + "1" + ")" * 150,
        "9" * 150,
    ],
)
def test_pathological_input_is_rejected_fast(boxed):
    # A time bound is the observable sign that nothing was evaluated (9**9**9 would never finish).
    start = time.perf_counter()
    score = score_countdown(THINK + "\\boxed{" + boxed + "}", REF)
    assert time.perf_counter() - start < 1.0
    assert not score.correct
    assert score.error is not None


def test_long_boxed_text_is_capped_in_extracted():
    score = score_countdown("\\boxed{" + "1+" * 50_000 + "1}", REF)
    assert f"over the {MAX_RAW_CHARS} limit" in score.error
    assert len(score.extracted) == MAX_EXPRESSION_CHARS + 1


@pytest.mark.parametrize(
    ("expression", "value", "numbers"),
    [
        ("2 + 3 * 4", 14, [2, 3, 4]),
        ("(2 + 3) * 4", 20, [2, 3, 4]),
        ("12 - 3 - 2", 7, [12, 3, 2]),
        ("12 / 3 / 2", 2, [12, 3, 2]),
        ("12 / (3 / 2)", 8, [12, 3, 2]),
        ("7 / 2", Fraction(7, 2), [7, 2]),
        ("8 / (3 - 8 / 3)", 24, [8, 3, 8, 3]),
    ],
)
def test_parser_precedence_and_associativity(expression, value, numbers):
    assert parse_expression(expression) == (value, numbers)


def test_normalize_rewrites_latex_operators():
    assert normalize_expression(r"\left( 7 - 3 \right) \times 12 \div 4 \cdot 2") == "( 7 - 3 ) * 12 / 4 * 2"
    assert normalize_expression(r"\dfrac{12}{4}") == "(12)/(4)"


def test_reference_missing_a_key_names_it():
    with pytest.raises(ValueError, match=r"missing \['target'\].*got keys \['numbers'\]"):
        score_countdown(r"\boxed{1+2}", {"numbers": [1, 2]})


def test_details_record_what_was_evaluated():
    score = score_countdown(THINK + r"\boxed{(7+3)*12+2 = 50}", REF)
    assert score.details["expression"] == "(7+3)*12+2"
    assert score.details["used"] == [7, 3, 12, 2]
    assert score.details["value"] == "122"
    assert score.details["target"] == 50
