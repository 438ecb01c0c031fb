r"""Build a data regime from raw teacher outputs: verify, keep one response per question, report.

Raw rows are `{"question", "answer", "response"}`, usually many responses per question (the paper
sampled 32 per query from Qwen3-32B and kept verified ones; github.com/Nebularaid2000/
rethink_sft_generalization@3378e2b README). For each response, in this order:

1. a row that is not an object with non-empty string `question`, `answer` (numbers are accepted) and
   `response` is `malformed_row` (an error naming the rows unless `on_bad_row="skip"`);
2. a response without a closed `</think>` (a clipped generation) is `unclosed_think`: every regime built
   here is read by a loader that needs the thinking (`sftlab.data.regimes`);
3. unless the regime is unverified, the last `\boxed{}` after the thinking is checked against `answer` with
   math-verify (`sftlab.eval.math_verify.verify_answers`, each check under a timeout): `wrong_answer`,
   `no_boxed_answer`, `verifier_timeout`, `verifier_error`.

Each question keeps one of its surviving responses, chosen by `random.Random(f"{seed}:{question}")` (not
`hash()`, which is salted per process); a question with none is dropped. Rows are written in the order
each question first appears, as parquet in the math_cot schema (`messages` = the user question,
`response`, `answer`, `source_index`), byte-identical for the same input and seed. This module knows
nothing about training.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab.data.example import DataError
from sftlab.data.math_rows import SHOWN_BAD_ROWS, InvalidJSON, OnBadRow, iter_rows
from sftlab.eval.answer_extraction import THINK_CLOSE, strip_thinking

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildRule:
    """How `data build` makes a regime: check answers? keep only the text after the thinking?"""

    verify: bool
    strip_thinking: bool = False


# The regimes that are built from raw teacher outputs; numinamath (human solutions) and countdown_cot
# (generated) are not.
BUILD_RULES: dict[str, BuildRule] = {
    "math_cot": BuildRule(verify=True),
    "deepseek_r1": BuildRule(verify=True),
    "math_nocot": BuildRule(verify=True, strip_thinking=True),
    "unverified_cot": BuildRule(verify=False),
}
# Ordered by how much they say about the teacher: a dropped question is reported under its most common
# reason, ties going to the earlier one here.
DROP_REASONS = (
    "wrong_answer",
    "no_boxed_answer",
    "unclosed_think",
    "verifier_timeout",
    "verifier_error",
    "malformed_row",
)
VERIFY_STATUS_REASON = {
    "wrong": "wrong_answer",
    "no_answer": "no_boxed_answer",
    "timeout": "verifier_timeout",
    "error": "verifier_error",
}
QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
VERIFY_CHUNK = 4096  # responses per verify_answers call (progress is logged between calls)


@dataclass
class _Question:
    text: str
    first_index: int
    candidates: list[tuple[int, str, str]] = field(default_factory=list)  # (index, answer, response)
    reasons: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class BuildResult:
    rows: list[dict[str, Any]]  # output rows, math_cot schema
    report: dict[str, Any]


def build_rule(regime: str) -> BuildRule:
    if regime in BUILD_RULES:
        return BUILD_RULES[regime]
    from sftlab.data.regimes import data_regime_class

    data_regime_class(regime)  # unknown names fail here with "did you mean"
    raise ValueError(
        f"data regime {regime!r} is not built from teacher outputs; `data build` makes: {', '.join(BUILD_RULES)}"
    )


def _malformed(row: Any) -> str | None:
    """Why a raw row is malformed, or None."""
    if isinstance(row, InvalidJSON):
        return row.message
    if not isinstance(row, Mapping):
        return f"expected an object with question/answer/response, got {type(row).__name__}"
    problems = []
    for key in ("question", "answer", "response"):
        value = row.get(key)
        if key == "answer" and isinstance(value, (int, float)) and not isinstance(value, bool):
            continue
        if not isinstance(value, str) or not value.strip():
            problems.append(f"{key}={value!r:.40}" if key in row else f"no {key!r}")
    return f"needs non-empty strings: {', '.join(problems)}" if problems else None


def build_regime(
    source: str,
    *,
    regime: str,
    seed: int = 0,
    on_bad_row: OnBadRow = "error",
    timeout_s: float = 5.0,
    max_workers: int | None = None,
    tokenizer: Any = None,
    verifier: str | None = None,
) -> BuildResult:
    """Verify and select. `tokenizer` (a loaded tokenizer) adds token-length quantiles to the report;
    `verifier` ("module:function") replaces math-verify's check in the worker processes (tests)."""
    rule = build_rule(regime)
    if on_bad_row not in ("error", "skip"):
        raise ValueError(f"on_bad_row must be 'error' or 'skip', got on_bad_row={on_bad_row!r}")
    if timeout_s <= 0:
        raise ValueError(f"timeout must be > 0 seconds, got timeout={timeout_s}")
    questions: dict[str, _Question] = {}
    row_reasons: Counter[str] = Counter()
    bad: list[str] = []
    pending: list[tuple[_Question, int, str, str]] = []  # awaiting verification
    rows_in = 0
    for index, (label, row) in enumerate(iter_rows(source)):
        rows_in += 1
        problem = _malformed(row)
        question_text = row.get("question") if isinstance(row, Mapping) else None
        question = None
        if isinstance(question_text, str) and question_text.strip():
            key = question_text.strip()
            question = questions.setdefault(key, _Question(key, index))
        if problem is not None:
            bad.append(f"{label}: {problem}")
            row_reasons["malformed_row"] += 1
            if question is not None:
                question.reasons["malformed_row"] += 1
            continue
        assert question is not None
        response, answer = row["response"], str(row["answer"]).strip()
        if THINK_CLOSE not in response:
            row_reasons["unclosed_think"] += 1
            question.reasons["unclosed_think"] += 1
            continue
        if rule.verify:
            pending.append((question, index, answer, response))
        else:
            question.candidates.append((index, answer, response))
    if not rows_in:
        raise DataError(f"{source}: no rows; expected JSON objects with question, answer and response")
    if bad and on_bad_row == "error":
        more = f" (and {len(bad) - SHOWN_BAD_ROWS} more)" if len(bad) > SHOWN_BAD_ROWS else ""
        raise DataError(
            f"{source}: {len(bad)} of {rows_in} rows are malformed: {' | '.join(bad[:SHOWN_BAD_ROWS])}{more}; "
            "fix them or pass --on_bad_row skip to drop and count them"
        )
    if pending:
        statuses = _verify(pending, timeout_s=timeout_s, max_workers=max_workers, verifier=verifier)
        for (question, index, answer, response), status in zip(pending, statuses, strict=True):
            if status == "correct":
                question.candidates.append((index, answer, response))
            else:
                reason = VERIFY_STATUS_REASON.get(status, "verifier_error")
                row_reasons[reason] += 1
                question.reasons[reason] += 1

    rows, question_reasons = [], Counter()
    for question in sorted(questions.values(), key=lambda q: q.first_index):
        if not question.candidates:
            if question.reasons:
                question_reasons[_main_reason(question.reasons)] += 1
            continue
        index, answer, response = random.Random(f"{seed}:{question.text}").choice(question.candidates)
        if rule.strip_thinking:
            response = strip_thinking(response).strip()
        rows.append(
            {
                "messages": [{"role": "user", "content": question.text}],
                "response": response,
                "answer": answer,
                "source_index": index,
            }
        )
    survivors = sum(len(q.candidates) for q in questions.values())
    report = {
        "regime": regime,
        "verified": rule.verify,
        "seed": seed,
        "rows_in": rows_in,
        "questions_in": len(questions),
        "rows_kept": len(rows),
        "questions_dropped": len(questions) - len(rows),
        # Rows that passed every check but lost the seeded choice to another response of their question.
        "rows_not_selected": survivors - len(rows),
        "dropped_rows_by_reason": {r: row_reasons[r] for r in DROP_REASONS},
        "dropped_questions_by_reason": {r: question_reasons[r] for r in DROP_REASONS},
        "malformed_rows": bad[:SHOWN_BAD_ROWS],
        "response_chars": quantiles([len(r["response"]) for r in rows]),
        "response_tokens": _token_quantiles(rows, tokenizer),
        "verifier_timeout_s": timeout_s if rule.verify else None,
    }
    if bad:
        log.warning("skipped %d malformed rows of %s; first: %s", len(bad), source, bad[0])
    return BuildResult(rows=rows, report=report)


def _main_reason(reasons: Counter[str]) -> str:
    return max(DROP_REASONS, key=lambda r: (reasons[r], -DROP_REASONS.index(r)))


def _verify(
    pending: Sequence[tuple[_Question, int, str, str]],
    *,
    timeout_s: float,
    max_workers: int | None,
    verifier: str | None,
) -> list[str]:
    from sftlab.eval.math_verify import verify_answers

    extra = {"verifier": verifier} if verifier else {}
    statuses: list[str] = []
    for start in range(0, len(pending), VERIFY_CHUNK):
        chunk = pending[start : start + VERIFY_CHUNK]
        # verify_answers strips the thinking itself and checks the last \boxed{} of what follows (a box
        # inside the thinking is a draft, not the answer).
        pairs = [(answer, response) for _, _, answer, response in chunk]
        outcomes = verify_answers(pairs=pairs, timeout_s=timeout_s, max_workers=max_workers, **extra)
        statuses.extend(o.status for o in outcomes)
        log.info("verified %d of %d responses", len(statuses), len(pending))
    return statuses


def quantiles(values: Iterable[float]) -> dict[str, float] | None:
    """mean, min, p10 … p99 (linear interpolation) and max; None for no values."""
    data = sorted(values)
    if not data:
        return None
    out = {"count": len(data), "mean": round(sum(data) / len(data), 1), "min": data[0]}
    for q in QUANTILES:
        pos = q * (len(data) - 1)
        lo = int(pos)
        hi = min(lo + 1, len(data) - 1)
        out[f"p{round(q * 100)}"] = round(data[lo] + (data[hi] - data[lo]) * (pos - lo), 1)
    out["max"] = data[-1]
    return out


def _token_quantiles(rows: list[dict[str, Any]], tokenizer: Any) -> dict[str, float] | None:
    if tokenizer is None or not rows:
        return None
    ids = tokenizer([r["response"] for r in rows], add_special_tokens=False)["input_ids"]
    return quantiles(len(x) for x in ids)


def write_parquet(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Write rows in the math_cot schema, deterministically (fixed schema and options, no timestamps), via a
    temporary file so a failed write leaves no half file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema(
        [
            ("messages", pa.list_(message)),
            ("response", pa.string()),
            ("answer", pa.string()),
            ("source_index", pa.int64()),
        ]
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp, compression="zstd")
    tmp.replace(path)
