"""evaluate(task, backend): render prompts, generate, score, aggregate. The one path every eval takes.

The in-training callback and the offline `sftlab eval` both call `evaluate_suite`, so a number logged
during training is reproducible from the saved checkpoint. Imports no Lightning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sftlab.eval.backends.base import GenerationBackend
from sftlab.eval.response_stats import response_stats
from sftlab.eval.task import EvalItem, EvalTask
from sftlab.eval.types import Generation, Score
from sftlab.metric_names import eval_metric, group_metric

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
        return self.metrics.get(GROUP_HEADLINE.get(self.group, "accuracy"), self.metrics.get("accuracy"))


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
    records, values, errors, flat = [], [], 0, []
    for done, (item, samples) in enumerate(zip(items, outputs, strict=True), start=1):
        for k, gen in enumerate(samples):
            score = _safe_score(task, gen.text, item.reference)
            errors += score.error is not None
            values.append(float(score.value or 0.0))
            flat.append(gen)
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
        if progress is not None:
            progress(done, len(items))
    metrics = {"accuracy": sum(values) / len(values), "num_samples": float(len(values))}
    metrics["score_error_rate"] = errors / len(values)
    metrics.update(response_stats(flat))
    # Task-specific aggregates (e.g. ASR and per-category rates for safety tasks) from the same records.
    aggregate = getattr(task, "aggregate", None)
    if aggregate is not None:
        metrics.update(aggregate(records))
    return TaskResult(
        task=task.name, group=task.group, version=task.version, metrics=metrics, records=records
    )


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
