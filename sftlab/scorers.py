"""The literal registry of scorers by task name, used by `sftlab score` and the eval tasks.

Each scorer is `score(response: str, reference) -> Score` and knows nothing about backends. What a task's
reference is: math tasks the gold answer string ("\\frac{14}{3}"), multiple choice the gold letter ("B"),
countdown `{"numbers": [...], "target": N}`, code (LiveCodeBench) `{"tests": [{"input", "output"}],
"fn_name": null | str}`, IFEval `{"instruction_id_list": [...], "kwargs": [{...} | null, ...]}` (as in the
hub dataset; `correct` is prompt-level strict, `extracted` the answer after the thinking), HaluEval "Yes" or
"No" (is the shown answer hallucinated?).

Tasks scored by a model (TruthfulQA by a judge model, AlpacaEval by a reward model) have no scorer here:
`get_scorer` finds them in `MODEL_SCORED` and says to run `sftlab eval` with that model configured.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from sftlab.eval.scorers.code import score_code, score_code_many
from sftlab.eval.scorers.countdown import score_countdown
from sftlab.eval.scorers.ifeval import score_ifeval
from sftlab.eval.scorers.math import score_math, score_math_many
from sftlab.eval.scorers.multiple_choice import GPQA_LETTERS, MMLU_PRO_LETTERS, score_multiple_choice
from sftlab.eval.scorers.yes_no import score_yes_no
from sftlab.eval.types import Score

Scorer = Callable[[str, Any], Score]
BatchScorer = Callable[[Sequence[str], Sequence[Any]], list[Score]]

SCORERS: dict[str, Scorer] = {
    "math500": score_math,
    "aime24": score_math,
    "aime25": score_math,
    "gsm8k": score_math,
    "math": score_math,
    "gpqa_diamond": partial(score_multiple_choice, valid_letters=GPQA_LETTERS),
    "mmlu_pro": partial(score_multiple_choice, valid_letters=MMLU_PRO_LETTERS),
    "multiple_choice": score_multiple_choice,
    "livecodebench_v2": score_code,
    "code": score_code,
    "countdown": score_countdown,
    "halueval": score_yes_no,
    "ifeval": score_ifeval,
}

# Tasks whose verdict comes from a model that `sftlab score` does not run: the init arg and an example.
MODEL_SCORED: dict[str, str] = {
    "truthfulqa": (
        "a judge model: set the task's judge init arg, e.g. judge: {class_path: "
        "sftlab.eval.judges.grader.ChatGrader, init_args: {model: gpt-4o-2024-08-06}}"
    ),
    "alpacaeval": (
        "a reward model: set the task's reward_model init arg, e.g. reward_model: {class_path: "
        "sftlab.eval.scorers.reward_model.RewardModelScorer, init_args: {model: "
        "allenai/Llama-3.1-8B-Instruct-RM-RB2}}"
    ),
}

# Scorers whose batch form beats a loop: math shares one verification pool round, code runs sandboxes in
# parallel. Same verdicts, input order kept.
BATCH_SCORERS: dict[Scorer, BatchScorer] = {
    score_math: score_math_many,
    score_code: score_code_many,
}


def get_scorer(task: str) -> Scorer:
    if isinstance(task, str) and task in SCORERS:
        return SCORERS[task]
    if isinstance(task, str) and task in MODEL_SCORED:
        raise ValueError(
            f"task {task!r} is scored by {MODEL_SCORED[task]}; `sftlab score` runs no models: score it with "
            f"`sftlab eval` and a suite whose {task} task has that model configured"
        )
    close = difflib.get_close_matches(str(task), SCORERS, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown task {task!r}.{hint} Known tasks: {', '.join(sorted(SCORERS))}.")


def check_reference(task: str, reference: Any) -> None:
    """Raise ValueError saying what is wrong with `reference` for `task` (module docstring), scoring nothing.

    Every scorer validates its reference before it reads the response, and an empty response costs none
    of them anything (no box, no code block, no answer part: no sandbox, no verification pool), so scoring
    "" is the check and the rules stay in one place, the scorer.
    """
    scorer = get_scorer(task)
    try:
        scorer("", reference)
    except (TypeError, AttributeError, KeyError) as exc:  # a reference of the wrong shape altogether
        raise ValueError(
            f"reference for task {task!r} has the wrong shape ({type(exc).__name__}: {exc}), "
            f"got {reference!r:.80}; see `sftlab.scorers` for each task's reference"
        ) from None
