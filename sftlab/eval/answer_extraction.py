r"""Pull answers out of long chain-of-thought responses.

Conventions follow the paper's evaluation (arXiv 2604.06628, §3): text before the last `</think>` is
removed before scoring, and the final answer is the last `\boxed{...}`. Brace matching is explicit so that
nested braces (`\boxed{\frac{1}{2}}`) survive. This module knows nothing about what a correct answer is.
"""

from __future__ import annotations

import re

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")


def split_thinking(text: str) -> tuple[str, str]:
    """Return (thinking, answer). Without `</think>` there is no thinking and the whole text is the answer.

    A response that opens `<think>` but never closes it (clipped generation) is all thinking, no answer.
    """
    idx = text.rfind(THINK_CLOSE)
    if idx < 0:
        if THINK_OPEN in text:
            return text, ""
        return "", text
    thinking = text[:idx]
    start = thinking.find(THINK_OPEN)
    if start >= 0:
        thinking = thinking[start + len(THINK_OPEN) :]
    return thinking, text[idx + len(THINK_CLOSE) :]


def strip_thinking(text: str) -> str:
    """The answer part of a response: everything after the last `</think>`."""
    return split_thinking(text)[1]


def all_boxed(text: str) -> list[str]:
    r"""Contents of every `\boxed{...}` (and `\fbox{...}`) in order; unbalanced boxes are skipped."""
    found = []
    for match in _BOXED.finditer(text):
        depth = 1
        i = match.end()
        while i < len(text) and depth:
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            i += 1
        if depth == 0:
            found.append(text[match.end() : i - 1])
    return found


def last_boxed(text: str) -> str | None:
    r"""Content of the last balanced `\boxed{...}`, or None."""
    boxes = all_boxed(text)
    return boxes[-1] if boxes else None
