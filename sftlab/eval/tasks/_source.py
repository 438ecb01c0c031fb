"""Where a benchmark's rows come from: a local file (tests, offline copies) or its hub dataset.

Local files and plain hub ids go through `sftlab.data.sources.read_rows` unchanged; hub datasets that
need a config name or loader arguments (GSM8K's "main", GPQA's "gpqa_diamond", LiveCodeBench's
`version_tag`) go through `datasets.load_dataset`. Knows nothing about prompts or scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sftlab.data.example import DataError
from sftlab.data.sources import read_rows
from sftlab.eval.task import EvalItem

# What a row builder raises for a bad row: a missing field, a wrong type, a bad value.
ROW_ERRORS: tuple[type[Exception], ...] = (KeyError, TypeError, ValueError)


def benchmark_rows(
    source: str | None,
    hub_id: str,
    split: str,
    *,
    config: str | None = None,
    limit: int | None = None,
    **load_kwargs: Any,
) -> list[tuple[str, Any]]:
    """(label, row) pairs from `source` when given, else from the hub dataset; the first `limit` rows."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1 or None, got limit={limit}")
    if source is not None or (config is None and not load_kwargs):
        rows = read_rows(source or hub_id, split)
    else:
        from datasets import load_dataset

        dataset = load_dataset(hub_id, config, split=split, **load_kwargs)
        rows = ((f"{hub_id}[{split}]:{i}", row) for i, row in enumerate(dataset))
    out = []
    for label, row in rows:
        if limit is not None and len(out) >= limit:
            break
        out.append((label, row))
    return out


def build_items(
    rows: Sequence[tuple[str, Any]],
    make: Callable[[int, Any], EvalItem | None],
    what: str,
    *,
    errors: tuple[type[Exception], ...] = ROW_ERRORS,
    limit: int | None = None,
) -> list[EvalItem]:
    """`make(index, row)` for every (label, row); None skips a row (a subset filter). Rows where `make`
    raises one of `errors` are collected, and all of them are reported in one DataError naming each row
    (the first 10), so a bad file is fixed in one pass. `limit` stops after that many items."""
    items: list[EvalItem] = []
    problems: list[str] = []
    for i, (label, row) in enumerate(rows):
        if limit is not None and len(items) >= limit:
            break
        try:
            item = make(i, row)
        except errors as exc:
            problems.append(f"{label}: {type(exc).__name__}: {exc}")
            continue
        if item is not None:
            items.append(item)
    if problems:
        raise DataError(f"{len(problems)} bad {what} row(s): " + "; ".join(problems[:10]))
    return items
