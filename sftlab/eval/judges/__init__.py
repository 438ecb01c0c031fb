"""Safety judges: decide whether an answer to a harmful request complies. The literal registry is `JUDGES`.

Configs pick a judge by `class_path` (e.g. `sftlab.eval.judges.rubric.RubricJudge`); `get_judge(name)`
serves code that picks by name. Judges know nothing about tasks, categories or metrics.

Graders (`grader.py`) are judge models for tasks that own their rubric (TruthfulQA): prompts in, raw
replies out; `ChatGrader` over HTTP, `BackendGrader` through a generation backend.
"""

from __future__ import annotations

import difflib
from typing import Any

from sftlab.eval.judges.base import Judge, JudgeVerdict, judge_all
from sftlab.eval.judges.grader import BackendGrader, ChatGrader, Grader, GraderReply
from sftlab.eval.judges.guard import GuardJudge
from sftlab.eval.judges.refusal import RefusalJudge
from sftlab.eval.judges.rubric import RubricJudge

JUDGES: dict[str, type] = {
    "rubric": RubricJudge,  # Qi et al. 2023 GPT-4 rubric, the paper's judge
    "guard": GuardJudge,  # local Llama-Guard-style model
    "refusal": RefusalJudge,  # offline refusal-phrase proxy (reported as asr_refusal_proxy)
}


def get_judge(name: str, **kwargs: Any) -> Judge:
    """Build the judge registered as `name` with `kwargs`; an unknown name lists the known ones."""
    if name in JUDGES:
        return JUDGES[name](**kwargs)
    close = difflib.get_close_matches(str(name), JUDGES, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(f"unknown judge {name!r}.{hint} Known judges: {', '.join(sorted(JUDGES))}.")


__all__ = [
    "JUDGES",
    "BackendGrader",
    "ChatGrader",
    "Grader",
    "GraderReply",
    "GuardJudge",
    "Judge",
    "JudgeVerdict",
    "RefusalJudge",
    "RubricJudge",
    "get_judge",
    "judge_all",
]
