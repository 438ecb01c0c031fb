"""The literal registry of scorers by task name, used by `sftlab score` and the eval tasks.

Each scorer is `score(response: str, reference) -> Score` and knows nothing about backends.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from sftlab.eval.scorers.countdown import score_countdown
from sftlab.eval.types import Score

Scorer = Callable[[str, Any], Score]

SCORERS: dict[str, Scorer] = {
    "countdown": score_countdown,
}


def get_scorer(task: str) -> Scorer:
    if task in SCORERS:
        return SCORERS[task]
    close = difflib.get_close_matches(str(task), SCORERS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown task {task!r}.{hint} Known tasks: {', '.join(sorted(SCORERS))}.")
