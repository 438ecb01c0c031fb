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
    r"""Contents of every balanced `\boxed{...}` (and `\fbox{...}`), in order of where they open.

    One left-to-right pass with a stack of open braces: linear in the text even for a clipped response
    full of unclosed boxes (a scan per box would be quadratic)."""
    box_braces = {m.end() - 1 for m in _BOXED.finditer(text)}
    if not box_braces:
        return []
    stack: list[int] = []
    found: list[tuple[int, str]] = []
    for i, ch in enumerate(text):
        if ch == "{":
            stack.append(i)
        elif ch == "}" and stack:
            start = stack.pop()
            if start in box_braces:
                found.append((start, text[start + 1 : i]))
    return [content for _, content in sorted(found)]


def last_boxed(text: str) -> str | None:
    r"""Content of the last balanced `\boxed{...}`, or None."""
    boxes = all_boxed(text)
    return boxes[-1] if boxes else None
