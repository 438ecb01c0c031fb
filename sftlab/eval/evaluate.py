"""evaluate(task, backend): render prompts, generate, score, aggregate. The one path every eval takes.

The in-training callback and the offline `sftlab eval` both call `evaluate_suite`, so a number logged
during training is reproducible from the saved checkpoint. Imports no Lightning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sftlab.eval.backends.base import GenerationBackend
from sftlab.eval.response_stats import response_stats
from sftlab.eval.task import EvalItem, EvalTask
from sftlab.eval.types import Generation, Score
from sftlab.metric_names import eval_metric, group_metric

log = logging.getLogger(__name__)

# Group aggregates: the headline number of each group (accuracy for id/ood, score for general, asr for
# safety), averaged over the group's tasks with equal weight.
GROUP_HEADLINE = {"id": "accuracy", "ood": "accuracy", "general": "score", "safety": "asr"}


@dataclass
class TaskResult:
    task: str
    group: str
    version: int
    metrics: dict[str, float]
    records: list[dict[str, Any]] = field(default_factory=list)

    @property
    def headline(self) -> float | None:
        """The group's headline metric; None when the task does not report it (never another metric)."""
        return self.metrics.get(GROUP_HEADLINE.get(self.group, "accuracy"))


def render_prompts(items: Sequence[EvalItem], tokenizer: Any) -> list[list[int]]:
    """Token ids of each prompt through the tokenizer's chat template with the generation prompt."""
    rendered = []
    for item in items:
        ids = tokenizer.apply_chat_template(
            [dict(m) for m in item.prompt], add_generation_prompt=True, tokenize=True
        )
        rendered.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return rendered


def evaluate(
    task: EvalTask,
    backend: GenerationBackend,
    tokenizer: Any,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> TaskResult:
    """Generate `task.sampling.n` samples per prompt and score each; accuracy is avg@n over all samples."""
    items = task.items()
    if not items:
        raise ValueError(f"task {task.name!r} has no items; check its source")
    prompts = render_prompts(items, tokenizer)
    outputs: list[list[Generation]] = backend.generate(prompts, task.sampling)
    if len(outputs) != len(items):
        raise RuntimeError(f"backend returned {len(outputs)} outputs for {len(items)} prompts")
    flat = [
        (item, k, gen) for item, samples in zip(items, outputs, strict=True) for k, gen in enumerate(samples)
    ]
    scores = _score_all(task, [gen.text for _, _, gen in flat], [item.reference for item, _, _ in flat])
    records, values, errors = [], [], 0
    last_item = None
    done = 0
    for (item, k, gen), score in zip(flat, scores, strict=True):
        errors += score.error is not None
        values.append(float(score.value or 0.0))
        records.append(
            {
                "id": item.id,
                "sample": k,
                "response": gen.text,
                "num_tokens": gen.num_tokens,
                "finish_reason": gen.finish_reason,
                "extracted": score.extracted,
                "correct": score.correct,
                "value": score.value,
                "score_error": score.error,
                "details": score.details,
            }
        )
        if progress is not None and item is not last_item:
            done += 1
            progress(done, len(items))
        last_item = item
    if not values:
        raise RuntimeError(f"backend returned no generations for task {task.name!r}")
    metrics = {"accuracy": sum(values) / len(values), "num_samples": float(len(values))}
    metrics["score_error_rate"] = errors / len(values)
    metrics.update(response_stats([gen for _, _, gen in flat]))
    # Task-specific aggregates (e.g. ASR and per-category rates for safety tasks) from the same records.
    aggregate = getattr(task, "aggregate", None)
    if aggregate is not None:
        metrics.update(aggregate(records))
    return TaskResult(
        task=task.name, group=task.group, version=task.version, metrics=metrics, records=records
    )


def _score_all(task: EvalTask, texts: list[str], references: list[Any]) -> list[Score]:
    """Score every sample; a task's `score_many` (batched judges, verifier pools) is used when it has one."""
    score_many = getattr(task, "score_many", None)
    if score_many is not None:
        try:
            scores = list(score_many(texts, references))
            if len(scores) == len(texts):
                return scores
        except Exception as exc:  # noqa: BLE001 - fall back to item-by-item scoring, which reports per-item errors
            log.warning(
                "%s.score_many failed (%s: %s); scoring item by item", task.name, type(exc).__name__, exc
            )
    return [_safe_score(task, text, ref) for text, ref in zip(texts, references, strict=True)]


def _safe_score(task: EvalTask, text: str, reference: Any) -> Score:
    # A scorer bug on one odd response must not lose the whole eval; it is counted as score_error_rate.
    try:
        return task.score(text, reference)
    except Exception as exc:  # noqa: BLE001 - reported, never swallowed silently
        return Score(correct=False, error=f"{type(exc).__name__}: {exc}")


def flatten_metrics(results: Sequence[TaskResult]) -> dict[str, float]:
    """`eval/{task}/{name}` for every task metric plus the group aggregates `eval/{group}/{headline}`."""
    flat: dict[str, float] = {}
    by_group: dict[str, list[float]] = {}
    for result in results:
        for name, value in result.metrics.items():
            flat[eval_metric(result.task, name)] = float(value)
        if result.headline is not None:
            by_group.setdefault(result.group, []).append(float(result.headline))
    for group, values in by_group.items():
        flat[group_metric(group, GROUP_HEADLINE.get(group, "accuracy"))] = sum(values) / len(values)
    return flat
