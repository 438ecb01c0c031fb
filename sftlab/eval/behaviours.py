"""Reasoning behaviours in a response, detected by curated phrase patterns.

The categories follow Gandhi et al. 2025, "Cognitive Behaviors that Enable Self-Improving Reasoners, or,
Four Habits of Highly Effective STaRs" (arXiv 2503.01307): backtracking, verification and subgoal setting
(here "decomposition"); their fourth, backward chaining, has no reliable surface phrase and is left out.
The paper classifies behaviours with an LLM; these phrase lists are sftlab's cheap, deterministic proxy,
matched case-insensitively on word boundaries so "wait" does not fire inside "await". They count
surface markers, not whether the behaviour was useful. Knows nothing about backends or scoring.
"""

from __future__ import annotations

import re

BEHAVIOUR_PHRASES: dict[str, tuple[str, ...]] = {
    "backtracking": (
        "wait",
        "let me go back",
        "that's wrong",
        "that is wrong",
        "actually,",
        "let me reconsider",
        "i made a mistake",
    ),
    "verification": (
        "let me check",
        "let me verify",
        "verify",
        "double-check",
        "double check",
        "plug back in",
        "plugging back",
        "check:",
    ),
    "decomposition": (
        "first,",
        "step 1",
        "break this down",
        "break it down",
        "sub-problem",
        "subproblem",
        "then,",
    ),
}


def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    # \b before the phrase; after it only when the phrase ends in a word character ("actually," ends in
    # punctuation, where \b would demand a word character next).
    parts = [
        rf"\b{re.escape(p)}" + (r"\b" if p[-1].isalnum() else "")
        for p in sorted(phrases, key=len, reverse=True)
    ]
    return re.compile("|".join(parts), re.IGNORECASE)


BEHAVIOUR_PATTERNS: dict[str, re.Pattern[str]] = {k: _pattern(v) for k, v in BEHAVIOUR_PHRASES.items()}


def behaviours(text: str) -> dict[str, bool]:
    """Which behaviours `text` shows (typographic apostrophes folded to ASCII first)."""
    folded = text.replace("\u2019", "'")
    return {name: pattern.search(folded) is not None for name, pattern in BEHAVIOUR_PATTERNS.items()}
