r"""Score Yes/No answers (HaluEval: "does this answer contain hallucinated information?").

Extraction, in order:

1. Thinking is stripped (`strip_thinking`: text before the last `</think>` goes; an unclosed `<think>`
   leaves no answer), as the paper does before scoring non-math tasks (arXiv 2604.06628 section 3).
2. *sftlab*: the last `\boxed{}` of the answer part when it holds Yes or No (case-insensitive, optionally
   in `\text{}`/`\textbf{}`/`\mathrm{}`, with a trailing period): `\boxed{No}`, `\boxed{\text{Yes}}`.
3. Else the last whole word "yes" or "no", any case -- the rule of the paper's released HaluEval scorer
   (github.com/Nebularaid2000/rethink_sft_generalization@3378e2b,
   `evaluation/lm-evaluation-harness/lm_eval/tasks/halueval/utils.py`, `process_results`:
   `re.findall(r'\b(Yes|No)\b', ..., re.IGNORECASE)[-1]`). Being the last word, "Yes, it is made up;
   there is no such film" reads No, exactly as there.
4. No match: wrong, `extracted=None`. *sftlab* deviation: the released scorer then falls back to the first
   line of the raw response, which for a reasoning model is thinking, not an answer; here it scores 0.

The reference is "Yes" or "No" (HaluEval's `hallucination` label, any case). `Score.error` is never set.
Knows nothing about backends or Lightning.
"""

from __future__ import annotations

import re

from sftlab.eval.answer_extraction import last_boxed, strip_thinking
from sftlab.eval.types import Score

_TEXT_WRAPPER = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|textit|mathit)\s*\{([^{}]*)\}")
_YES_NO = re.compile(r"\b(yes|no)\b", re.I)
LABELS = ("Yes", "No")


def extract_yes_no(response: str) -> tuple[str | None, str | None]:
    """("Yes" | "No", "boxed" | "last_word") read from the answer part, or (None, None)."""
    answer = strip_thinking(response)
    boxed = last_boxed(answer)
    if boxed is not None:
        content = _TEXT_WRAPPER.sub(r"\1", boxed).strip().rstrip(".").strip().capitalize()
        if content in LABELS:
            return content, "boxed"
    words = _YES_NO.findall(answer)
    if words:
        return words[-1].capitalize(), "last_word"
    return None, None


def normalize_label(reference: object) -> str:
    """ "Yes" or "No" from a reference in any case; anything else raises ValueError naming the value."""
    label = reference.strip().capitalize() if isinstance(reference, str) else None
    if label not in LABELS:
        raise ValueError(
            f"the reference must be 'Yes' or 'No' (HaluEval's hallucination label), got {reference!r:.80}"
        )
    return label


def score_yes_no(response: str, reference: str) -> Score:
    """Correct when the Yes/No read from the response equals the reference; see the module docstring."""
    gold = normalize_label(reference)
    label, source = extract_yes_no(response)
    return Score(correct=label == gold, extracted=label, details={"source": source})
