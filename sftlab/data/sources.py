"""Read rows from a local JSONL/JSON/Parquet file or a hub dataset id, each tagged with where it came from.

Every row keeps a `file:line` (or `hub-id[split]:index`) label so data errors downstream name the exact
row. Hub ids go through `datasets.load_dataset` unchanged (the real-world path); tests use local files.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sftlab.data.example import DataError

LOCAL_SUFFIXES = (".jsonl", ".json", ".parquet")


def read_rows(source: str, split: str = "train") -> Iterator[tuple[str, Any]]:
    """Yield (label, row) pairs. Rows are whatever the file holds; schema checks belong to the caller."""
    path = Path(source).expanduser()
    if path.suffix in LOCAL_SUFFIXES or path.exists():
        if not path.is_file():
            raise DataError(f"data file {source} does not exist; check the path")
        yield from _read_local(path)
        return
    if source.count("/") != 1:
        raise DataError(
            f"data source {source!r} is neither a local {'/'.join(LOCAL_SUFFIXES)} file nor a hub id 'org/name'"
        )
    from datasets import load_dataset

    dataset = load_dataset(source, split=split)
    for i, row in enumerate(dataset):
        yield f"{source}[{split}]:{i}", row


def _read_local(path: Path) -> Iterator[tuple[str, Any]]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        for i, row in enumerate(pq.read_table(path).to_pylist()):
            yield f"{path}:{i + 1}", row
        return
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(data, list):
            raise DataError(f"{path}: expected a JSON list of rows, got {type(data).__name__}")
        for i, row in enumerate(data):
            yield f"{path}[{i}]", row
        return
    with path.open() as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                yield f"{path}:{lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{lineno}: invalid JSON ({exc.msg}); fix or remove the row") from None
