"""Every metric key sftlab logs is built here: `{stage}/{group}/{name}` (e.g. `eval/math500/accuracy`).

Keeping the shape in one place lets Aim, the report and the regime monitor agree on names.
"""

from __future__ import annotations

TRAIN = "train"
EVAL = "eval"
REGIME = "regime"


# Written into `trainer.callback_metrics` (not logged) with each eval's metrics: the optimizer step whose
# weights they scored. With asynchronous evals it lags `trainer.global_step`.
EVAL_STEP = "eval/step"
# Eval bookkeeping, logged next to the scores but not scores themselves.
EVAL_ERRORS = "eval/errors"
EVAL_TIME_S = "eval/time_s"
EVAL_LAG_STEPS = "eval/lag_steps"
EVAL_SKIPPED = "eval/skipped"


def metric(stage: str, *parts: str) -> str:
    """Join a stage and its parts with '/', rejecting empty parts and stray slashes."""
    for part in (stage, *parts):
        if not part or part.startswith("/") or part.endswith("/"):
            raise ValueError(
                f"metric name parts must be non-empty without edge slashes, got {(stage, *parts)!r}"
            )
    return "/".join((stage, *parts))


def eval_metric(task: str, name: str) -> str:
    return metric(EVAL, task, name)


def group_metric(group: str, name: str) -> str:
    """Aggregates over the tasks of a group: `eval/id/accuracy`, `eval/ood/accuracy`, `eval/general/score`."""
    return metric(EVAL, group, name)
