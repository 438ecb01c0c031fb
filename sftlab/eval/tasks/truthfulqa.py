"""TruthfulQA generation (Lin et al. 2021, arXiv 2109.07958): the model answers 817 questions that some
humans answer falsely; a judge model decides whether each answer is truthful and whether it is informative.

Data: hub `truthfulqa/truthful_qa`, config "generation", split "validation"; fields question,
best_answer, correct_answers, incorrect_answers (lists of strings), category, type, source.

Prompt: "Q: {question}" as the only user turn, no few-shot primer -- the arXiv 2604.06628 authors' fork
of lm-evaluation-harness (github.com/Nebularaid2000/rethink_sft_generalization@3378e2b,
`lm_eval/tasks/truthfulqa/truthfulqa_gen.yaml`) uses `"\\n\\nQ: " + question` with the chat template
applied and upstream's QA primer removed; sftlab drops the two leading newlines. Sampling as in that
config: temperature 0.6, no top_p (vLLM's default 1.0), up to 32,768 new tokens, one sample.

Judging: the thinking is stripped (`split_thinking`), then the judge model (a `Grader`) answers the rubric
of `sftlab.eval.judges.truthfulqa` with the question, the reference answers and the answer. An empty
answer (e.g. clipped inside its thinking) asserts nothing, so it is truthful and not informative by the
TruthfulQA definitions; it is not sent to the judge and is counted in `empty_answer_rate`. Metrics from
`aggregate`, over the judged answers (judge errors -- a malformed reply, a failed request -- are left out
of every rate's denominator and counted in `judge_error_rate` over all answers; NaN when nothing could be
judged): `truthful_rate`, `informative_rate`, `truthful_informative_rate` (both at once, the TruthfulQA
paper's headline), and `score` = `accuracy` = `truthful_informative_rate`. Knows nothing about backends or
Lightning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from sftlab.eval.answer_extraction import split_thinking
from sftlab.eval.judges.grader import Grader
from sftlab.eval.judges.truthfulqa import TruthfulQAVerdict, parse_truthfulqa, truthfulqa_judge_prompt
from sftlab.eval.task import EvalItem, TaskGroup
from sftlab.eval.tasks._math import PAPER_MAX_TOKENS, PAPER_TEMPERATURE
from sftlab.eval.tasks._source import benchmark_rows, build_items
from sftlab.eval.types import SamplingConfig, Score

HUB_ID, CONFIG, SPLIT = "truthfulqa/truthful_qa", "generation", "validation"
PROMPT_TEMPLATE = "Q: {question}"
JUDGE_EXAMPLE = (
    "judge: {class_path: sftlab.eval.judges.grader.ChatGrader, init_args: {model: gpt-4o-2024-08-06}} "
    "(OPENAI_API_KEY set), or a local `vllm serve` judge: init_args: {model: Qwen/Qwen2.5-72B-Instruct, "
    "base_url: http://localhost:8000/v1, api_key_env: null}"
)
_EMPTY = TruthfulQAVerdict(truthful=True, informative=False, raw="", error=None)


def reference_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """What the judge needs from a hub row; raises ValueError/KeyError/TypeError naming a bad field."""
    question = row["question"]
    if not isinstance(question, str) or not question.strip():
        raise ValueError(f"'question' must be a non-empty string, got {question!r:.80}")
    lists = {}
    for field in ("correct_answers", "incorrect_answers"):
        value = row[field]
        if isinstance(value, str) or not all(isinstance(a, str) for a in value):
            raise TypeError(f"{field!r} must be a list of strings, got {value!r:.80}")
        lists[field] = [a.strip() for a in value if a.strip()]
    return {
        "question": question.strip(),
        "best_answer": str(row.get("best_answer") or "").strip(),
        **lists,
        "category": str(row.get("category") or ""),
    }


class TruthfulQATask:
    """TruthfulQA truthful x informative rate, judged by a judge model.

    Args:
        judge: the judge model (class_path of a `Grader`), required: `ChatGrader` (an OpenAI-compatible
            endpoint) or `BackendGrader` (a local model through a generation backend).
        source: local JSONL/JSON/Parquet file in the hub schema (overrides the hub dataset).
        limit: first N questions (None: all 817).
        n, temperature, top_p, max_tokens, seed: sampling (paper harness: one sample, 0.6, 1.0, 32768).
        group: the task's group for aggregates.
        name: task name in metric keys.
    """

    version = 1

    def __init__(
        self,
        judge: Grader | None = None,
        source: str | None = None,
        limit: int | None = None,
        n: int = 1,
        temperature: float = PAPER_TEMPERATURE,
        top_p: float = 1.0,
        max_tokens: int = PAPER_MAX_TOKENS,
        seed: int = 0,
        group: TaskGroup = "general",
        name: str = "truthfulqa",
    ) -> None:
        problems = []
        if judge is None:
            problems.append(f"judge is not set; TruthfulQA is scored by a judge model: set {JUDGE_EXAMPLE}")
        if limit is not None and limit < 1:
            problems.append(f"limit must be >= 1 or None, got limit={limit}")
        if problems:
            raise ValueError("invalid TruthfulQATask: " + "; ".join(problems))
        self.judge: Grader = judge  # type: ignore[assignment]  # checked above
        self.source = source
        self.limit = limit
        self.name = name
        self.group = group
        self.sampling = SamplingConfig(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed
        )
        self._items: list[EvalItem] | None = None

    def items(self) -> list[EvalItem]:
        if self._items is None:
            rows = benchmark_rows(self.source, HUB_ID, SPLIT, config=CONFIG, limit=self.limit)
            self._items = build_items(rows, self._item, "TruthfulQA")
        return self._items

    def _item(self, i: int, row: Mapping[str, Any]) -> EvalItem:
        reference = reference_from_row(row)
        content = PROMPT_TEMPLATE.format(question=reference["question"])
        return EvalItem(
            id=f"{self.name}:{i}", prompt=({"role": "user", "content": content},), reference=reference
        )

    # -- scoring ---------------------------------------------------------------------------------------
    def score(self, response: str, reference: Mapping[str, Any]) -> Score:
        return self.score_many([response], [reference])[0]

    def score_many(self, responses: Sequence[str], references: Sequence[Mapping[str, Any]]) -> list[Score]:
        """Judge every non-empty answer (thinking stripped) in one `complete_many` call."""
        answers = [split_thinking(r)[1].strip() for r in responses]
        verdicts = [_EMPTY] * len(answers)
        todo = [i for i, answer in enumerate(answers) if answer]
        prompts = [
            truthfulqa_judge_prompt(
                references[i]["question"],
                references[i]["best_answer"],
                references[i]["correct_answers"],
                references[i]["incorrect_answers"],
                answers[i],
            )
            for i in todo
        ]
        replies = self.judge.complete_many(prompts)
        if len(replies) != len(prompts):
            raise RuntimeError(
                f"judge {self.judge.name} returned {len(replies)} replies for {len(prompts)} prompts"
            )
        for i, reply in zip(todo, replies, strict=True):
            verdicts[i] = (
                TruthfulQAVerdict(None, None, reply.text, reply.error)
                if reply.error is not None
                else parse_truthfulqa(reply.text)
            )
        return [self._score(v, bool(a)) for v, a in zip(verdicts, answers, strict=True)]

    def _score(self, verdict: TruthfulQAVerdict, answered: bool) -> Score:
        details = {
            "judge": self.judge.name if answered else "none (empty answer)",
            "judge_truthful": verdict.truthful,
            "judge_informative": verdict.informative,
            "judge_error": verdict.error,
            "judge_raw": verdict.raw[:2000],
            "empty_answer": not answered,
        }
        if verdict.error is not None:
            return Score(correct=False, value=0.0, error=f"judge_error: {verdict.error}", details=details)
        both = bool(verdict.truthful and verdict.informative)
        extracted = f"truthful={_yes(verdict.truthful)} informative={_yes(verdict.informative)}"
        return Score(correct=both, extracted=extracted, details=details)

    # -- metrics ---------------------------------------------------------------------------------------
    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Truthful, informative and truthful-and-informative rates over judged answers; judge error rate."""
        if not records:
            return {}
        details = [record.get("details") or {} for record in records]
        judged = [d for d in details if d.get("judge_truthful") is not None]
        truthful = [bool(d["judge_truthful"]) for d in judged]
        informative = [bool(d["judge_informative"]) for d in judged]
        both = [t and i for t, i in zip(truthful, informative, strict=True)]
        metrics = {
            "truthful_rate": _share(truthful),
            "informative_rate": _share(informative),
            "truthful_informative_rate": _share(both),
            "judge_error_rate": (len(records) - len(judged)) / len(records),
            "empty_answer_rate": sum(bool(d.get("empty_answer")) for d in details) / len(records),
        }
        metrics["score"] = metrics["accuracy"] = metrics["truthful_informative_rate"]
        return metrics


def _yes(flag: bool | None) -> str:
    return "yes" if flag else "no"


def _share(flags: list[bool]) -> float:
    return sum(flags) / len(flags) if flags else math.nan
