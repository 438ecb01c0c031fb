"""LiveCodeBench v2 (Jain et al. 2024; release_v2, 511 problems), hub `livecodebench/code_generation_lite`
with `version_tag="release_v2"`, test split. Fields: question_content, starter_code, public_test_cases and
private_test_cases (JSON strings of `{input, output, testtype}` lists; the private ones are often stored
as base64(zlib(pickle(json))) -- decoded here as LiveCodeBench's own `lcb_runner` does, which unpickles
the official dataset's bytes), metadata (a JSON string with `func_name` for functional problems).

Prompt: LiveCodeBench's generation prompt (lcb_runner/prompts/code_generation.py, condensed) -- the problem,
then the starter code to complete (functional) or the stdin/stdout instruction. Reference:
`{"tests": [...], "fn_name": ...}` for `score_code`; tests run in the sandbox with the paper's 6 s
timeout. avg@3, group ood.
"""

from __future__ import annotations

import base64
import json
import pickle
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from sftlab.eval.scorers.code import score_code, score_code_many
from sftlab.eval.task import EvalItem, TaskGroup
from sftlab.eval.tasks._math import PAPER_MAX_TOKENS, PAPER_TEMPERATURE, PAPER_TOP_P
from sftlab.eval.tasks._source import ROW_ERRORS, benchmark_rows, build_items
from sftlab.eval.types import SamplingConfig, Score

_ROW_ERRORS = (*ROW_ERRORS, zlib.error, pickle.UnpicklingError)  # compressed private tests
HUB_ID, SPLIT, VERSION_TAG = "livecodebench/code_generation_lite", "test", "release_v2"
SYSTEM_LINE = (
    "You will be given a question (problem specification) and will generate a correct Python program that "
    "matches the specification and passes all tests."
)
STDIN_FORMAT = (
    "Read the inputs from stdin solve the problem and write the answer to stdout (do not directly test on "
    "the sample inputs). Enclose your code within delimiters as follows.\n```python\n# YOUR CODE HERE\n```"
)
STARTER_FORMAT = (
    "You will use the following starter code to write the solution to the problem and enclose your code "
    "within delimiters."
)


def parse_tests(value: Any) -> list[dict[str, Any]]:
    """A test-case list from a JSON string, a compressed string (base64 of zlib of a pickled JSON string),
    or an already-parsed list."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        decoded = pickle.loads(zlib.decompress(base64.b64decode(value.encode("utf-8"))))  # noqa: S301 - LCB's format
        return json.loads(decoded)


def reference_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """`{"tests": [{input, output}], "fn_name": str | None}` from a LiveCodeBench row."""
    tests = parse_tests(row.get("public_test_cases")) + parse_tests(row.get("private_test_cases"))
    metadata = row.get("metadata") or {}
    if isinstance(metadata, str):
        metadata = json.loads(metadata) if metadata.strip() else {}
    fn_name = metadata.get("func_name") or None
    return {
        "tests": [{"input": str(t["input"]), "output": str(t["output"])} for t in tests],
        "fn_name": fn_name,
    }


def prompt_text(row: Mapping[str, Any]) -> str:
    starter = str(row.get("starter_code") or "").strip()
    tail = f"{STARTER_FORMAT}\n```python\n{starter}\n```" if starter else STDIN_FORMAT
    return f"{SYSTEM_LINE}\n\nQuestion: {str(row['question_content']).strip()}\n\n{tail}"


class LiveCodeBenchV2Task:
    """LiveCodeBench v2 pass@1 (avg@n over samples), tests run in the sandbox.

    Args:
        source: local JSONL/JSON/Parquet file in the hub schema (overrides the hub dataset).
        limit: first N problems (None: all).
        n, temperature, top_p, max_tokens, seed: sampling (paper: avg@3, 0.6, 0.95, 32768).
        timeout_s: per-test wall-clock limit (paper: 6 s).
        max_workers: concurrent sandboxes (None: one per CPU).
        group: the task's group for aggregates.
        name: task name in metric keys.
    """

    version = 1

    def __init__(
        self,
        source: str | None = None,
        limit: int | None = None,
        n: int = 3,
        temperature: float = PAPER_TEMPERATURE,
        top_p: float = PAPER_TOP_P,
        max_tokens: int = PAPER_MAX_TOKENS,
        seed: int = 0,
        timeout_s: float = 6.0,
        max_workers: int | None = None,
        group: TaskGroup = "ood",
        name: str = "livecodebench_v2",
    ) -> None:
        self.name, self.group, self.source, self.limit = name, group, source, limit
        self.timeout_s, self.max_workers = timeout_s, max_workers
        self.sampling = SamplingConfig(
            n=n, temperature=temperature, top_p=top_p, max_tokens=max_tokens, seed=seed
        )
        self._items: list[EvalItem] | None = None

    def items(self) -> list[EvalItem]:
        if self._items is None:
            rows = benchmark_rows(self.source, HUB_ID, SPLIT, limit=self.limit, version_tag=VERSION_TAG)
            self._items = build_items(rows, self._item, "LiveCodeBench", errors=_ROW_ERRORS)
        return self._items

    def _item(self, i: int, row: Mapping[str, Any]) -> EvalItem:
        reference, content = reference_from_row(row), prompt_text(row)
        if not reference["tests"]:
            raise ValueError("no test cases")
        qid = row.get("question_id", i)
        return EvalItem(
            id=f"{self.name}:{qid}", prompt=({"role": "user", "content": content},), reference=reference
        )

    def score(self, response: str, reference: Mapping[str, Any]) -> Score:
        return score_code(response, reference, timeout_s=self.timeout_s)

    def score_many(self, responses: Sequence[str], references: Sequence[Mapping[str, Any]]) -> list[Score]:
        return score_code_many(responses, references, timeout_s=self.timeout_s, max_workers=self.max_workers)
