r"""Score multiple-choice answers (GPQA-Diamond, MMLU-Pro): read one option letter, compare with the gold one.

Extraction, in order; only letters valid for the question count (a letter outside `valid_letters` is no
match at all, so a later "the answer is E" on a 4-option question cannot override an earlier valid one):

1. Thinking is stripped (the paper removes text before the last `</think>` before scoring non-math tasks,
   arXiv 2604.06628 section 3); an unclosed `<think>` leaves no answer.
2. *sftlab*: the last `\boxed{}` of the answer part, since the paper's prompt asks for a boxed answer. Its
   content is read as a letter when it is one, optionally in parentheses and/or `\text{}`/`\textbf{}`/
   `\mathrm{}`, optionally followed by `.`, `:`, `)` or a space and the option's text: `\boxed{B}`,
   `\boxed{(B)}`, `\boxed{\text{(B)}}`, `\boxed{B. 42 J}` all read B; `\boxed{42}` reads nothing.
3. Else the last phrase "answer is (X)" / "answer is X" -- MMLU-Pro's own extractor (TIGER-AI-Lab/MMLU-Pro
   `extract_answer`, `answer is \(?([A-J])\)?`, also lm-evaluation-harness's `mmlu_pro` regex) -- or
   "Answer: X" -- simple-evals' `ANSWER_PATTERN_MULTICHOICE` (`(?i)Answer[ \t]*:[ \t]*\$?([A-D])\$?`,
   openai/simple-evals `common.py`). *sftlab* deviations: the last match wins (those take the first; a
   long CoT revises itself, and this is the same rule as "the last box"), markdown emphasis and `$` around
   the letter are skipped ("**Answer:** B", "answer is **(C)**"), and the letter must end there ("the answer
   is Because ..." is no match), and "option"/"choice" before it is allowed. The letter is case-sensitive:
   "the answer is a ..." is prose.
4. No match: wrong, `extracted=None`.

`Score.error` is never set: every response gets a verdict. A gold letter outside `valid_letters` raises
ValueError (a dataset bug). Knows nothing about backends or Lightning.
"""

from __future__ import annotations

import re
import string

from sftlab.eval.answer_extraction import last_boxed, strip_thinking
from sftlab.eval.types import Score

MMLU_PRO_LETTERS = "ABCDEFGHIJ"  # MMLU-Pro has up to 10 options
GPQA_LETTERS = "ABCD"

_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mathit|textit)\s*\{([^{}]*)\}")
_BOXED_LETTER = re.compile(r"\(?\s*([A-Z])\s*\)?(?:\s*[.:)]|\s|$).*", re.S)
_ANSWER_PHRASE = re.compile(
    r"(?i:answer)(?:\s+is|\s*:)"  # "answer is" / "Answer:"
    r"[\s*:$]*(?:\\\(\s*)?(?:(?i:option|choice)\s*)?"  # markdown, "$", "\(", "option"
    r"\(?\s*([A-Z])\s*\)?(?![A-Za-z0-9])"  # the letter, maybe in parentheses, ending there
)


def score_multiple_choice(response: str, reference: str, *, valid_letters: str = MMLU_PRO_LETTERS) -> Score:
    """Score one response against the gold letter; see the module docstring for the rules."""
    _check(reference, valid_letters)
    letter, source = extract_choice(response, valid_letters)
    details = {"source": source, "valid_letters": valid_letters}
    return Score(correct=letter == reference, extracted=letter, details=details)


def extract_choice(response: str, valid_letters: str = MMLU_PRO_LETTERS) -> tuple[str | None, str | None]:
    """(letter, "boxed" | "phrase") read from the answer part, or (None, None)."""
    answer = strip_thinking(response)
    boxed = last_boxed(answer)
    if boxed is not None:
        content = _TEXT_WRAPPER.sub(r"\1", boxed).strip()
        match = _BOXED_LETTER.fullmatch(content)
        if match and match.group(1) in valid_letters:
            return match.group(1), "boxed"
    plain = _TEXT_WRAPPER.sub(r"\1", answer)
    letters = [m.group(1) for m in _ANSWER_PHRASE.finditer(plain) if m.group(1) in valid_letters]
    if letters:
        return letters[-1], "phrase"
    return None, None


def _check(reference: object, valid_letters: str) -> None:
    problems = []
    if not (valid_letters and set(valid_letters) <= set(string.ascii_uppercase)):
        problems.append(f"valid_letters must be capital letters, got valid_letters={valid_letters!r}")
    if not (isinstance(reference, str) and len(reference) == 1 and reference in valid_letters):
        problems.append(f"the reference must be one of the letters {valid_letters!r}, got {reference!r:.80}")
    if problems:
        raise ValueError("invalid multiple-choice scoring input: " + "; ".join(problems))
