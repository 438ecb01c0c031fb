"""`sftlab score --input IN.jsonl --output OUT.jsonl`: score responses offline with the eval scorers.

Each input row is `{"task": name, "reference": ..., "response": "..."}`; each output row is the input row
plus `"correct": bool` and `"extracted": str | null`. What `reference` holds depends on the task (math: the
gold answer string; multiple choice: the gold letter; countdown: `{"numbers", "target"}`; code:
`{"tests": [{"input", "output"}], "fn_name"}`, see `sftlab.scorers`). Bad rows, references included, are
reported together with their 1-based line numbers; nothing is written unless every row is valid. Rows of
a scorer with a batch form are scored together (all math rows in one verification batch, code rows in
parallel sandboxes); output keeps the input order.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sftlab.eval.types import Score
from sftlab.scorers import BATCH_SCORERS, Scorer, check_reference, get_scorer

REQUIRED = ("task", "reference", "response")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="JSONL of {task, reference, response} rows")
    parser.add_argument("--output", required=True, help="JSONL to write: each input row + correct, extracted")


def score_file(input_path: str, output_path: str) -> dict[str, int]:
    path = Path(input_path)
    if not path.is_file():
        raise ValueError(f"--input {input_path}: no such file")
    rows, problems = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"{path}:{lineno}: invalid JSON ({exc.msg})")
            continue
        if not isinstance(row, dict):
            problems.append(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            continue
        missing = [k for k in REQUIRED if k not in row]
        if missing:
            problems.append(f"{path}:{lineno}: missing {', '.join(missing)}")
            continue
        if not isinstance(row["response"], str):
            problems.append(
                f"{path}:{lineno}: response must be a string, got {type(row['response']).__name__}"
            )
            continue
        try:
            check_reference(row["task"], row["reference"])  # an unknown task fails here too
        except ValueError as exc:
            problems.append(f"{path}:{lineno}: {exc}")
            continue
        rows.append(row)
    if problems:
        shown = "\n  ".join(problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise ValueError(f"{len(problems)} bad rows in {path}:\n  {shown}{more}")
    scores = _score_rows(rows)
    counts = {"rows": len(rows), "correct": sum(bool(score.correct) for score in scores)}
    out = Path(output_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as f:
        for row, score in zip(rows, scores, strict=True):
            f.write(json.dumps({**row, "correct": bool(score.correct), "extracted": score.extracted}) + "\n")
    return counts


def _score_rows(rows: list[dict]) -> list[Score]:
    """Score every row, grouping those whose scorer has a batch form; results in row order."""
    scores: list[Score | None] = [None] * len(rows)
    batches: dict[Scorer, list[int]] = {}
    for i, row in enumerate(rows):
        scorer = get_scorer(row["task"])
        if scorer in BATCH_SCORERS:
            batches.setdefault(scorer, []).append(i)
        else:
            scores[i] = scorer(row["response"], row["reference"])
    for scorer, indices in batches.items():
        responses = [rows[i]["response"] for i in indices]
        references = [rows[i]["reference"] for i in indices]
        for i, score in zip(indices, BATCH_SCORERS[scorer](responses, references), strict=True):
            scores[i] = score
    return scores  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sftlab score", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        counts = score_file(args.input, args.output)
    except ValueError as exc:
        print(f"sftlab score: error: {exc}", file=sys.stderr)
        return 2
    print(f"scored {counts['rows']} rows: {counts['correct']} correct -> {args.output}")
    return 0
