r"""Multiple-choice scorer (GPQA-Diamond, MMLU-Pro): which letter is read from realistic long-CoT answers."""

from __future__ import annotations

import pytest

from sftlab.eval.scorers.multiple_choice import GPQA_LETTERS, MMLU_PRO_LETTERS, score_multiple_choice

THINKING = (
    "<think>\nThe reaction is an SN2 at a secondary carbon, so inversion of configuration. Option A keeps the "
    "configuration, so the answer is (A)? No wait, that was retention; inversion gives the answer is (C).\n"
    "</think>\n\n"
)

# (id, response, valid letters, extracted, source)
TABLE = [
    ("boxed-letter", THINKING + "Inversion gives the (S) product.\n\n\\boxed{C}", GPQA_LETTERS, "C", "boxed"),
    ("boxed-text-parens", THINKING + "Final answer: $\\boxed{\\text{(B)}}$", GPQA_LETTERS, "B", "boxed"),
    ("boxed-parens", THINKING + "\\boxed{(D)}", GPQA_LETTERS, "D", "boxed"),
    (
        "boxed-letter-and-option-text",
        THINKING + "\\boxed{B. 2.5 \\times 10^{-3} M}",
        GPQA_LETTERS,
        "B",
        "boxed",
    ),
    ("boxed-textbf", THINKING + "\\boxed{\\textbf{A}}", GPQA_LETTERS, "A", "boxed"),
    (
        "last-box-wins",
        THINKING + "Not \\boxed{A}; correcting the sign, \\boxed{D}.",
        GPQA_LETTERS,
        "D",
        "boxed",
    ),
    (
        "answer-is-then-more-text",
        THINKING + "The answer is (B) because the lone pair is delocalised, which lowers the basicity.",
        MMLU_PRO_LETTERS,
        "B",
        "phrase",
    ),
    ("answer-is-bare", THINKING + "Therefore the answer is H.", MMLU_PRO_LETTERS, "H", "phrase"),
    ("answer-colon", THINKING + "Answer: C", GPQA_LETTERS, "C", "phrase"),
    (
        "markdown-answer",
        THINKING + "**Answer:** D\n\nThis follows from Le Chatelier.",
        GPQA_LETTERS,
        "D",
        "phrase",
    ),
    ("answer-is-option", THINKING + "So the correct answer is option J.", MMLU_PRO_LETTERS, "J", "phrase"),
    (
        "last-phrase-wins",
        THINKING + "The answer is A at first sight, but the answer is (C).",
        GPQA_LETTERS,
        "C",
        "phrase",
    ),
    ("only-inside-thinking", THINKING + "I am not certain which option is right.", GPQA_LETTERS, None, None),
    ("clipped", "<think>\nSo the answer is (C) unless", GPQA_LETTERS, None, None),
    ("no-answer", "The question is ambiguous between the options.", MMLU_PRO_LETTERS, None, None),
    ("letter-outside-gpqa-options", THINKING + "\\boxed{E}", GPQA_LETTERS, None, None),
    (
        "letter-outside-options-falls-back",
        THINKING + "The answer is (B).\n\n\\boxed{F}",
        GPQA_LETTERS,
        "B",
        "phrase",
    ),
    (
        "invalid-later-phrase-ignored",
        THINKING + "The answer is B. Final answer: E",
        GPQA_LETTERS,
        "B",
        "phrase",
    ),
    (
        "boxed-value-not-letter",
        THINKING + "The answer is (A), that is \\boxed{42}.",
        GPQA_LETTERS,
        "A",
        "phrase",
    ),
    ("word-starting-with-a-letter", THINKING + "The answer is Because of sterics.", GPQA_LETTERS, None, None),
    ("lowercase-article", THINKING + "The answer is a weak acid.", MMLU_PRO_LETTERS, None, None),
    (
        "answers-plural-is-not-answer",
        THINKING + "Both answers: A and C look plausible.",
        GPQA_LETTERS,
        None,
        None,
    ),
]


@pytest.mark.parametrize(
    ("response", "valid", "extracted", "source"), [c[1:] for c in TABLE], ids=[c[0] for c in TABLE]
)
def test_extraction(response, valid, extracted, source) -> None:
    reference = extracted or "A"
    score = score_multiple_choice(response, reference, valid_letters=valid)
    assert (score.extracted, score.details["source"]) == (extracted, source)
    assert score.correct == (extracted is not None) and score.error is None


def test_a_different_gold_letter_is_wrong() -> None:
    score = score_multiple_choice(THINKING + "\\boxed{\\text{(B)}}", "C", valid_letters=GPQA_LETTERS)
    assert not score.correct and score.value == 0.0 and score.extracted == "B"


def test_default_accepts_mmlu_pro_letters() -> None:
    assert score_multiple_choice("The answer is (J).", "J").correct


@pytest.mark.parametrize(
    ("reference", "valid", "fragment"),
    [
        ("E", GPQA_LETTERS, "one of the letters 'ABCD', got 'E'"),
        ("b", GPQA_LETTERS, "got 'b'"),
        ("A", "ab", "valid_letters='ab'"),
    ],
)
def test_bad_inputs_are_reported(reference, valid, fragment) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        score_multiple_choice("\\boxed{A}", reference, valid_letters=valid)
