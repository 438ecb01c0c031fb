"""IFEval (Zhou et al. 2023, arXiv 2311.07911): 541 prompts with verifiable formatting instructions
("answer in fewer than 200 words", "no commas", "wrap the answer in JSON"). Group general.

Data: hub dataset `google/IFEval`, split "train" (its only split), rows {key, prompt, instruction_id_list,
kwargs}; a local JSONL/JSON/Parquet file in that schema overrides it. The prompt is the only user turn, as
written (no system prompt, no added instruction). Greedy decoding by default, as IFEval harnesses run it
(the original paper, lm-evaluation-harness). Scoring (`sftlab.eval.scorers.ifeval`): the thinking is
stripped and each instruction is checked strictly and loosely; a response is correct when it follows all
its prompt's instructions strictly. Metrics from `aggregate`: prompt_level_strict_acc, inst_level_strict_acc,
prompt_level_loose_acc, inst_level_loose_acc, strict accuracy per instruction category
(`inst_level_strict_acc/keywords`, ...), and `score` (= prompt_level_strict_acc, the general group's
headline). Knows nothing about backends or Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sftlab.data.example import DataError
from sftlab.eval.scorers.ifeval import ifeval_metrics, parse_reference, score_ifeval
from sftlab.eval.task import EvalItem, TaskGroup
from sftlab.eval.tasks._math import PAPER_MAX_TOKENS
from sftlab.eval.tasks._source import benchmark_rows
from sftlab.eval.types import SamplingConfig, Score

HUB_ID, SPLIT = "google/IFEval", "train"


class IFEvalTask:
    """IFEval instruction-following accuracy, greedy by default.

    Args:
        source: local JSONL/JSON/Parquet file in the hub schema (overrides the hub dataset).
        limit: first N prompts (None: all 541).
        n, temperature, top_p, max_tokens, seed: sampling (greedy, one sample; 32768 tokens as the paper's
            other tasks, since the thinking comes first).
        group: the task's group for aggregates.
        name: task name in metric keys.
    """

    version = 1

    def __init__(
        self,
        source: str | None = None,
        limit: int | None = None,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = PAPER_MAX_TOKENS,
        seed: int = 0,
        group: TaskGroup = "general",
        name: str = "ifeval",
    ) -> None:
        self.name, self.group, self.source, self.limit = name, group, source, limit
        self.sampling = SamplingConfig(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed
        )
        self._items: list[EvalItem] | None = None

    def items(self) -> list[EvalItem]:
        if self._items is None:
            items, problems, seen = [], [], set()
            for index, (label, row) in enumerate(
                benchmark_rows(self.source, HUB_ID, SPLIT, limit=self.limit)
            ):
                try:
                    item = self._item(index, row)
                except (ValueError, TypeError, KeyError) as exc:
                    problems.append(f"{label}: {exc}")
                    continue
                if item.id in seen:
                    problems.append(f"{label}: duplicate key {item.id!r}; every row needs its own 'key'")
                seen.add(item.id)
                items.append(item)
            if problems:
                raise DataError(f"{len(problems)} bad {self.name} row(s): " + "; ".join(problems[:10]))
            self._items = items
        return self._items

    def _item(self, index: int, row: Mapping[str, Any]) -> EvalItem:
        prompt = row.get("prompt") if isinstance(row, Mapping) else None
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(
                "missing or empty 'prompt' (IFEval rows are {key, prompt, instruction_id_list, kwargs})"
            )
        reference = {"instruction_id_list": row.get("instruction_id_list"), "kwargs": row.get("kwargs")}
        parse_reference(reference)  # every bad instruction id or kwarg is reported before any generation
        key = row["key"] if row.get("key") is not None else index
        return EvalItem(
            id=f"{self.name}:{key}",
            prompt=({"role": "user", "content": prompt},),
            reference={
                "instruction_id_list": list(reference["instruction_id_list"]),
                "kwargs": list(row["kwargs"]),
            },
        )

    def score(self, response: str, reference: Mapping[str, Any]) -> Score:
        return score_ifeval(response, reference)

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """The IFEval accuracies over every sample; a sample whose scoring failed follows no instruction."""
        references = {item.id: item.reference for item in self.items()}
        results = []
        for record in records:
            details = record.get("details") or {}
            ids: Sequence[str] = (
                details.get("instruction_id_list") or references[record["id"]]["instruction_id_list"]
            )
            results.append(
                (ids, details.get("strict", [False] * len(ids)), details.get("loose", [False] * len(ids)))
            )
        return ifeval_metrics(results)
