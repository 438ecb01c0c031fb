r"""Turn rows of the math SFT schemas into `Example`s: column mapping, schema checks, the `<think>` rule of
each data regime, and the bad-row policy.

Schemas read (arXiv 2604.06628's released sets, github.com/Nebularaid2000/rethink_sft_generalization
@3378e2b README "Training data schema": parquet rows with `message`, a chat list, and `response`):

- chat: `message` or `messages` (chat list ending with the user turn, or with the assistant turn when
  there is no response column) + `response`;
- plain: `question` (`problem` for NuminaMath) + `response` (`solution` for NuminaMath);
- an optional `answer` column becomes the example's `reference`.

A missing column is a schema error naming the file and the columns it has. A bad row (wrong types, no
closed `</think>` where the regime needs one, ...) is reported with its row label; with
`on_bad_row="skip"` it is dropped and counted by reason instead, never silently. This module knows nothing
about tokenizers or Lightning.
"""

from __future__ import annotations

import difflib
import json
import logging
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sftlab.data.example import DataError, Example, user_prompt
from sftlab.data.sources import read_rows
from sftlab.eval.answer_extraction import THINK_CLOSE, THINK_OPEN, strip_thinking

log = logging.getLogger(__name__)

OnBadRow = Literal["error", "skip"]
# require: keep the response, which must close its thinking; strip: keep only the text after the last
# </think> (which must exist); forbid: the response must hold no thinking; any: no rule.
ThinkRule = Literal["require", "strip", "forbid", "any"]
CHAT_COLUMNS = ("message", "messages")
ANSWER_COLUMN = "answer"
# Bad rows shown in an error message; the count says how many there are in all.
SHOWN_BAD_ROWS = 10


@dataclass(frozen=True)
class RowSchema:
    """Accepted column names; the first prompt column (and response column) a row has is used."""

    prompt_columns: tuple[str, ...]
    response_columns: tuple[str, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return (*self.prompt_columns, *self.response_columns, ANSWER_COLUMN)


MATH_SCHEMA = RowSchema(prompt_columns=("message", "messages", "question"), response_columns=("response",))
NUMINA_SCHEMA = RowSchema(
    prompt_columns=("message", "messages", "problem", "question"), response_columns=("solution", "response")
)


class BadRow(Exception):
    """One row that cannot become an example; `reason` is the key it is counted under."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class InvalidJSON:
    message: str


def iter_rows(source: str, split: str = "train") -> Iterator[tuple[str, Any]]:
    """`read_rows`, except that an invalid JSONL line comes back as a row to report (so `on_bad_row="skip"`
    can count it) instead of stopping the read. Labels match `read_rows`: `file:line`."""
    path = Path(source).expanduser()
    if path.suffix != ".jsonl" or not path.is_file():
        yield from read_rows(source, split)
        return
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                yield f"{path}:{lineno}", InvalidJSON(f"invalid JSON ({exc.msg})")


def check_field_map(field_map: Mapping[str, str] | None, schema: RowSchema) -> dict[str, str]:
    """Validate `{file column: expected column}`; an unknown target name fails with the known ones."""
    field_map = dict(field_map or {})
    problems = []
    for theirs, ours in field_map.items():
        if ours not in schema.columns:
            close = difflib.get_close_matches(ours, schema.columns, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"{theirs!r} -> {ours!r}{hint}")
    if problems:
        raise ValueError(
            f"field_map maps file columns onto expected ones, {{file column: expected column}}; unknown "
            f"expected column in {', '.join(problems)}. Expected columns: {', '.join(schema.columns)}"
        )
    return field_map


def renamed(row: Mapping[str, Any], field_map: Mapping[str, str]) -> dict[str, Any]:
    out = dict(row)
    for theirs, ours in field_map.items():
        if theirs in out:
            out[ours] = out.pop(theirs)
    return out


def check_columns(row: Mapping[str, Any], schema: RowSchema, source: str) -> None:
    """Schema check on a file's first row: it must have a prompt column and a response (a response column,
    or a chat list that can end with the assistant turn)."""
    have = ", ".join(map(str, row)) or "none"
    prompt = next((c for c in schema.prompt_columns if c in row), None)
    if prompt is None:
        raise DataError(
            f"{source}: rows have no {_either(schema.prompt_columns)} column (columns: {have}); set "
            f"field_map, e.g. field_map: {{your_column: {schema.prompt_columns[-1]}}}"
        )
    if prompt not in CHAT_COLUMNS and not any(c in row for c in schema.response_columns):
        raise DataError(
            f"{source}: rows have no {_either(schema.response_columns)} column (columns: {have}); set "
            f"field_map, e.g. field_map: {{your_column: {schema.response_columns[-1]}}}"
        )


def _either(names: Sequence[str]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"


def with_instruction(prompt: Sequence[Mapping[str, str]], instruction: str) -> tuple[dict[str, str], ...]:
    """Append the instruction to the last (user) turn, unless it already ends with it (released sets may
    carry it already; it is never doubled)."""
    *head, last = (dict(m) for m in prompt)
    content = last["content"]
    if instruction and not content.rstrip().endswith(instruction):
        content = user_prompt(content, instruction)[0]["content"]
    return (*head, {**last, "content": content})


def row_to_example(label: str, row: Any, schema: RowSchema, think: ThinkRule, instruction: str) -> Example:
    """One row (already renamed) -> Example; raises BadRow naming what is wrong."""
    if isinstance(row, InvalidJSON):
        raise BadRow("malformed_row", row.message)
    if not isinstance(row, Mapping):
        raise BadRow("malformed_row", f"expected an object with columns, got {type(row).__name__}")
    prompt_col = next((c for c in schema.prompt_columns if c in row), None)
    response_col = next((c for c in schema.response_columns if c in row), None)
    if prompt_col is None:
        raise BadRow("malformed_row", f"row has no {_either(schema.prompt_columns)} column")
    value = row[prompt_col]
    response = row[response_col] if response_col else None
    try:
        if prompt_col in CHAT_COLUMNS:
            prompt, response = _split_messages(value, response)
        else:
            if not isinstance(value, str) or not value.strip():
                raise BadRow("malformed_row", f"{prompt_col!r} must be a non-empty string, got {value!r:.60}")
            prompt = user_prompt(value, None)
        if response is None:
            raise BadRow("malformed_row", f"row has no {_either(schema.response_columns)} value")
        if not isinstance(response, str):
            raise BadRow("malformed_row", f"response must be a string, got {type(response).__name__}")
        response = apply_think_rule(response, think)
        answer = row.get(ANSWER_COLUMN)
        reference = (
            str(answer) if isinstance(answer, (int, float)) and not isinstance(answer, bool) else answer
        )
        return Example(
            prompt=with_instruction(prompt, instruction), response=response, source=label, reference=reference
        )
    except DataError as exc:  # Example's own checks (roles, empty response)
        raise BadRow("malformed_row", str(exc).replace(f" ({label})", "")) from None


def _split_messages(messages: Any, response: Any) -> tuple[tuple[dict[str, str], ...], Any]:
    if isinstance(messages, str) or not isinstance(messages, Sequence) or not messages:
        raise BadRow("malformed_row", f"chat messages must be a non-empty list, got {messages!r:.60}")
    if not all(isinstance(m, Mapping) for m in messages):
        raise BadRow("malformed_row", "every chat message must be an object with role and content")
    turns = [{"role": m.get("role"), "content": m.get("content")} for m in messages]
    if turns[-1]["role"] == "assistant":
        # A response column wins over a trailing assistant turn when a row has both.
        if response is None:
            response = turns[-1]["content"]
        turns = turns[:-1]
    if not turns or turns[-1]["role"] != "user":
        raise BadRow("malformed_row", "chat messages must end with a user turn (or user, then assistant)")
    if not all(isinstance(t["content"], str) for t in turns):
        raise BadRow("malformed_row", "every chat message content must be a string")
    return tuple(turns), response  # roles are checked by Example


def apply_think_rule(response: str, think: ThinkRule) -> str:
    if think in ("require", "strip") and THINK_CLOSE not in response:
        raise BadRow(
            "unclosed_think",
            f"response has no closed {THINK_CLOSE} (a clipped generation, or a no-CoT row in a long-CoT regime)",
        )
    if think == "strip":
        response = strip_thinking(response).strip()
        if not response:
            raise BadRow("empty_after_think", f"response has nothing after its last {THINK_CLOSE}")
    if think == "forbid" and (THINK_CLOSE in response or THINK_OPEN in response):
        raise BadRow(
            "think_in_response",
            f"a no-CoT response contains {THINK_OPEN}/{THINK_CLOSE}; set derive_from_cot=true to strip it",
        )
    if not response.strip():
        raise BadRow("malformed_row", "response is empty")
    return response


def load_examples(
    source: str,
    *,
    split: str,
    schema: RowSchema,
    think: ThinkRule,
    instruction: str,
    field_map: Mapping[str, str] | None,
    on_bad_row: OnBadRow,
    regime_name: str,
    stats: dict[str, int],
    stats_prefix: str,
) -> list[Example]:
    """All examples of one source in file order. Bad rows raise one DataError listing them all, or (skip)
    are counted into `stats` as `{prefix}_skipped_{reason}` and logged."""
    mapping = check_field_map(field_map, schema)
    examples: list[Example] = []
    bad: list[tuple[str, BadRow]] = []
    checked = False
    rows = 0
    for label, raw in iter_rows(source, split):
        rows += 1
        row = renamed(raw, mapping) if isinstance(raw, Mapping) else raw
        if not checked and isinstance(row, Mapping):
            check_columns(row, schema, source)
            checked = True
        try:
            examples.append(row_to_example(label, row, schema, think, instruction))
        except BadRow as exc:
            bad.append((label, exc))
    if not rows:
        raise DataError(f"{source}: no rows; check the file (or the hub split)")
    if bad and on_bad_row == "error":
        shown = " | ".join(f"{lab}: {exc}" for lab, exc in bad[:SHOWN_BAD_ROWS])
        more = f" (and {len(bad) - SHOWN_BAD_ROWS} more)" if len(bad) > SHOWN_BAD_ROWS else ""
        raise DataError(
            f"{source}: {len(bad)} of {rows} rows are bad for data regime {regime_name!r}: {shown}{more}; "
            "fix them or set on_bad_row=skip to drop and count them"
        )
    reasons = Counter(exc.reason for _, exc in bad)
    stats[f"{stats_prefix}_rows"] = rows
    stats[f"{stats_prefix}_examples"] = len(examples)
    stats[f"{stats_prefix}_skipped"] = len(bad)
    for reason, count in sorted(reasons.items()):
        stats[f"{stats_prefix}_skipped_{reason}"] = count
    if bad:
        log.warning(
            "%s: skipped %d of %d rows of %s (%s); first: %s: %s",
            regime_name,
            len(bad),
            rows,
            source,
            ", ".join(f"{reason}={count}" for reason, count in sorted(reasons.items())),
            bad[0][0],
            bad[0][1],
        )
    if not examples:
        raise DataError(
            f"{source}: all {rows} rows were bad for data regime {regime_name!r}; nothing to train on"
        )
    return examples


class MathRows:
    """Where a math data regime's rows come from and how they are read; each regime holds one (composition,
    not a base class). `stats` collects the row counts of every split loaded."""

    def __init__(
        self,
        regime_name: str,
        schema: RowSchema,
        think: ThinkRule,
        *,
        source: str,
        field_map: Mapping[str, str] | None,
        instruction: str,
        split: str,
        validation_source: str | None,
        validation_split: str,
        on_bad_row: OnBadRow,
    ) -> None:
        if on_bad_row not in ("error", "skip"):
            raise ValueError(f"on_bad_row must be 'error' or 'skip', got on_bad_row={on_bad_row!r}")
        self.regime_name = regime_name
        self.schema = schema
        self.think = think
        self.source = source
        self.field_map = check_field_map(field_map, schema)
        self.instruction = instruction
        self.split = split
        self.validation_source = validation_source
        self.validation_split = validation_split
        self.on_bad_row = on_bad_row
        # Per split: {split}_rows, {split}_examples, {split}_skipped, {split}_skipped_{reason}.
        self.stats: dict[str, int] = {}

    def load(self, split: str) -> list[Example]:
        if split == "train":
            source, hub_split = self.source, self.split
        elif split == "validation" and self.validation_source:
            source, hub_split = self.validation_source, self.validation_split
        else:
            raise DataError(
                f"data regime {self.regime_name!r} has no {split} data: set data.regime.init_args."
                "validation_source for teacher-forced validation, or data.eval_examples=0 (benchmarks are "
                "eval tasks, not data splits)"
            )
        return load_examples(
            source,
            split=hub_split,
            schema=self.schema,
            think=self.think,
            instruction=self.instruction,
            field_map=self.field_map,
            on_bad_row=self.on_bad_row,
            regime_name=self.regime_name,
            stats=self.stats,
            stats_prefix=split,
        )
