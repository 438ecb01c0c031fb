"""MMLU-Pro (Wang et al. 2024), hub `TIGER-Lab/MMLU-Pro` test split, fields question_id / question /
options (up to 10) / answer (gold letter A-J). The paper evaluates it greedily (one sample, temperature
0). `subset_file` restricts it to listed question ids (a JSON list or one id per line), for a fixed
cheaper subset. Group ood."""

from __future__ import annotations

import json
from pathlib import Path

from sftlab.data.example import DataError, user_prompt
from sftlab.eval.scorers.multiple_choice import MMLU_PRO_LETTERS, score_multiple_choice
from sftlab.eval.task import EvalItem, TaskGroup
from sftlab.eval.tasks._choice import CHOICE_INSTRUCTION, choice_prompt
from sftlab.eval.tasks._math import PAPER_MAX_TOKENS
from sftlab.eval.tasks._source import benchmark_rows
from sftlab.eval.types import SamplingConfig, Score

HUB_ID, SPLIT = "TIGER-Lab/MMLU-Pro", "test"


def read_subset(path: str) -> set[str]:
    """Question ids from a JSON list or a file with one id per line."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise DataError(f"MMLU-Pro subset_file {file} does not exist")
    text = file.read_text().strip()
    ids = json.loads(text) if text.startswith("[") else text.split()
    return {str(i) for i in ids}


class MmluProTask:
    """MMLU-Pro accuracy, greedy by default.

    Args:
        source: local JSONL/JSON/Parquet file in the hub schema (overrides the hub dataset).
        subset_file: only these question ids (JSON list or one per line); None: all.
        limit: first N questions after the subset filter (None: all).
        n, temperature, top_p, max_tokens, seed: sampling (paper: greedy, one sample, 32768).
        group: the task's group for aggregates.
        instruction: appended after the options.
        name: task name in metric keys.
    """

    version = 1

    def __init__(
        self,
        source: str | None = None,
        subset_file: str | None = None,
        limit: int | None = None,
        n: int = 1,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_tokens: int = PAPER_MAX_TOKENS,
        seed: int = 0,
        group: TaskGroup = "ood",
        instruction: str = CHOICE_INSTRUCTION,
        name: str = "mmlu_pro",
    ) -> None:
        self.name, self.group, self.source, self.limit, self.instruction = (
            name,
            group,
            source,
            limit,
            instruction,
        )
        self.subset_file = subset_file
        self.sampling = SamplingConfig(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed
        )
        self._items: list[EvalItem] | None = None

    def items(self) -> list[EvalItem]:
        if self._items is None:
            subset = read_subset(self.subset_file) if self.subset_file else None
            rows = benchmark_rows(self.source, HUB_ID, SPLIT)
            items, problems = [], []
            for label, row in rows:
                if self.limit is not None and len(items) >= self.limit:
                    break
                try:
                    qid, question, options, gold = (
                        str(row["question_id"]),
                        str(row["question"]),
                        list(row["options"]),
                        str(row["answer"]),
                    )
                except (KeyError, TypeError) as exc:
                    problems.append(f"{label}: missing field {exc}")
                    continue
                if subset is not None and qid not in subset:
                    continue
                letters = MMLU_PRO_LETTERS[: len(options)]
                if gold not in letters:
                    problems.append(f"{label}: answer {gold!r} is not one of {letters!r}")
                    continue
                text = choice_prompt(question, options, letters)
                items.append(
                    EvalItem(
                        id=f"{self.name}:{qid}", prompt=user_prompt(text, self.instruction), reference=gold
                    )
                )
            if problems:
                raise DataError(f"{len(problems)} bad MMLU-Pro row(s): " + "; ".join(problems[:10]))
            self._items = items
        return self._items

    def score(self, response: str, reference: str) -> Score:
        return score_multiple_choice(response, reference, valid_letters=MMLU_PRO_LETTERS)
