"""HaluEval (Li et al. 2023, arXiv 2305.11747): is this answer / response / summary hallucinated, Yes or No?

Data: hub `pminervini/HaluEval`, the configs lm-evaluation-harness uses, one per subset, split "data"
(10,000 rows each): `qa_samples` (knowledge, question, answer, hallucination), `dialogue_samples`
(knowledge, dialogue_history, response, hallucination), `summarization_samples` (document, summary,
hallucination); `hallucination` is "yes" or "no".

Prompt: verbatim from the arXiv 2604.06628 authors' lm-evaluation-harness fork
(github.com/Nebularaid2000/rethink_sft_generalization@3378e2b, `evaluation/lm-evaluation-harness/lm_eval/
tasks/halueval/utils.py`, `QA_INSTURCTIONS` etc. and `doc_to_text_*`), the only user turn (they ran
`lm_eval --apply_chat_template`). Upstream lm-evaluation-harness (`lm_eval/tasks/halueval/utils.py`, after
RUCAIBox/HaluEval `evaluation/evaluate.py`) has the same layout but its instructions carry worked examples
per hallucination type; the fork cut those (keeping "based on the following hallucination types" with
none following) and that is what the paper's numbers come from. Oddities of the original are kept: the
QA and dialogue prompts label the knowledge "#Knowledge: " (no closing #), and the instructions end in
`MUST be "Yes" or "No"".`.

Scoring: `sftlab.eval.scorers.yes_no` (thinking stripped, boxed Yes/No, else the last yes/no word, else
wrong). Metrics from `aggregate`: `accuracy/{subset}` per subset, `no_answer_rate` (no Yes/No found) and
`score` = accuracy over all samples, the general group's headline (the fork's group mean weights subsets
by size, which is the same number).

Sampling: the fork's configs set temperature 0.6 and no top_p (so vLLM's default 1.0), up to 32,768 new
tokens, one sample. Knows nothing about backends or Lightning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sftlab.eval.scorers.yes_no import normalize_label, score_yes_no
from sftlab.eval.task import EvalItem, TaskGroup
from sftlab.eval.tasks._math import PAPER_MAX_TOKENS, PAPER_TEMPERATURE
from sftlab.eval.tasks._source import benchmark_rows, build_items
from sftlab.eval.types import SamplingConfig, Score

HUB_ID, SPLIT = "pminervini/HaluEval", "data"
SUBSETS = ("qa", "dialogue", "summarization")

# The fork's instructions (see the module docstring), verbatim.
_MUST = ' The answer you give MUST be "Yes" or "No"".'
INSTRUCTIONS = {
    "qa": (
        "I want you act as an answer judge. Given a question and an answer, your objective is to determine if "
        "the provided answer contains non-factual or hallucinated information. You SHOULD give your judgement "
        "based on the following hallucination types and the world knowledge.\nYou should try your best to "
        "determine if the answer contains non-factual or hallucinated information." + _MUST
    ),
    "dialogue": (
        "I want you act as a response judge. Given a dialogue history and a response, your objective is to "
        "determine if the provided response contains non-factual or hallucinated information. You SHOULD give "
        "your judgement based on the following hallucination types and the world knowledge.\nYou should try "
        "your best to determine if the response contains non-factual or hallucinated information." + _MUST
    ),
    "summarization": (
        "I want you act as a summary judge. Given a document and a summary, your objective is to determine if "
        "the provided summary contains non-factual or hallucinated information. You SHOULD give your "
        "judgement based on the following hallucination types and the world knowledge.\nYou should try your "
        "best to determine if the summary contains non-factual or hallucinated information." + _MUST
    ),
}
# (field, label) lines after the instruction, in order; the first label's extra "\n" is the blank line.
_FIELDS = {
    "qa": (("knowledge", "\n#Knowledge: "), ("question", "#Question#: "), ("answer", "#Answer#: ")),
    "dialogue": (
        ("knowledge", "\n#Knowledge: "),
        ("dialogue_history", "#Dialogue History#: "),
        ("response", "#Response#: "),
    ),
    "summarization": (("document", "\n#Document#: "), ("summary", "#Summary#: ")),
}


def halueval_prompt(subset: str, row: Mapping[str, Any]) -> str:
    """The fork's `doc_to_text_{subset}`: instruction, a blank line, the fields, "#Your Judgement#:"."""
    lines = [INSTRUCTIONS[subset]] + [label + str(row[field]) for field, label in _FIELDS[subset]]
    return "\n".join(lines) + "\n#Your Judgement#:"


class HaluEvalTask:
    """HaluEval hallucination-detection accuracy over the qa, dialogue and summarization subsets.

    Args:
        subsets: which subsets to run, in this order (default all three).
        sources: local JSONL/JSON/Parquet file per subset in the hub schema, e.g.
            `{qa: qa.jsonl}`; given, it must name every selected subset (no mixing with the hub).
        limit: first N rows of each subset (None: all 10,000).
        n, temperature, top_p, max_tokens, seed: sampling (paper harness: one sample, 0.6, 1.0, 32768).
        group: the task's group for aggregates.
        name: task name in metric keys.
    """

    version = 1

    def __init__(
        self,
        subsets: Sequence[str] = SUBSETS,
        sources: Mapping[str, str] | None = None,
        limit: int | None = None,
        n: int = 1,
        temperature: float = PAPER_TEMPERATURE,
        top_p: float = 1.0,
        max_tokens: int = PAPER_MAX_TOKENS,
        seed: int = 0,
        group: TaskGroup = "general",
        name: str = "halueval",
    ) -> None:
        problems = _check_subsets(subsets, sources)
        if limit is not None and limit < 1:
            problems.append(f"limit must be >= 1 or None, got limit={limit}")
        if problems:
            raise ValueError("invalid HaluEvalTask: " + "; ".join(problems))
        self.subsets = tuple(subsets)
        self.sources = dict(sources) if sources is not None else None
        self.limit = limit
        self.name = name
        self.group = group
        self.sampling = SamplingConfig(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed
        )
        self._items: list[EvalItem] | None = None
        self._subset_of: dict[str, str] = {}

    def items(self) -> list[EvalItem]:
        if self._items is None:
            rows = []
            for subset in self.subsets:
                source = self.sources[subset] if self.sources is not None else None
                subset_rows = benchmark_rows(
                    source, HUB_ID, SPLIT, config=f"{subset}_samples", limit=self.limit
                )
                rows += [(label, (subset, i, row)) for i, (label, row) in enumerate(subset_rows)]
            self._items = build_items(rows, self._item, "HaluEval")
        return self._items

    def _item(self, _: int, entry: tuple[str, int, Mapping[str, Any]]) -> EvalItem:
        subset, i, row = entry
        prompt, gold = halueval_prompt(subset, row), normalize_label(row["hallucination"])
        item_id = f"{self.name}:{subset}:{i}"
        self._subset_of[item_id] = subset
        return EvalItem(id=item_id, prompt=({"role": "user", "content": prompt},), reference=gold)

    def score(self, response: str, reference: str) -> Score:
        return score_yes_no(response, reference)

    def aggregate(self, records: list[dict[str, Any]]) -> dict[str, float]:
        """Accuracy per subset, the share with no Yes/No found, and `score` (accuracy over all samples)."""
        if not records:
            return {}
        self.items()  # the id -> subset map
        by_subset: dict[str, list[bool]] = {}
        for record in records:
            by_subset.setdefault(self._subset_of[record["id"]], []).append(bool(record["correct"]))
        metrics = {f"accuracy/{s}": sum(c) / len(c) for s, c in by_subset.items()}
        metrics["no_answer_rate"] = sum(r["extracted"] is None for r in records) / len(records)
        metrics["score"] = sum(bool(r["correct"]) for r in records) / len(records)
        return metrics


def _check_subsets(subsets: Sequence[str], sources: Mapping[str, str] | None) -> list[str]:
    problems = []
    unknown = [s for s in subsets if s not in SUBSETS]
    if not subsets or unknown or len(set(subsets)) != len(subsets):
        problems.append(f"subsets must be distinct names from {list(SUBSETS)}, got subsets={list(subsets)!r}")
    if sources is not None:
        missing = [s for s in subsets if s not in sources]
        extra = [s for s in sources if s not in subsets]
        if missing or extra:
            problems.append(
                f"sources must name a file for exactly the selected subsets {list(subsets)}, got keys "
                f"{sorted(sources)}; add or remove entries, or drop sources to read the hub"
            )
    return problems
