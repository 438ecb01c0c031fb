"""`sftlab regime --input HIST.jsonl --output OUT.jsonl`: label every eval of a run's history offline.

Each input row is `{"step", "id_accuracy", "ood_accuracy", "response_tokens_mean", "num_samples"}` in
strictly increasing step order, the first row being the step-0 baseline; null marks a metric that was not
measured. Each output row is `{"step", "training_regime", "length_stage", "reason", "recommendation",
"best_step"}` for the same step, computed from the rows up to that step only, exactly as
the in-training regime callback labels it. Rows are numbered from 1 by line; every
problem in the file is reported at once and nothing is written unless all rows are valid.
The rules live in `sftlab.training_regime`; this module only reads, validates and writes files.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

from sftlab.training_regime import EvalPoint, RegimeThresholds, classify_history

REQUIRED = ("step", "id_accuracy", "ood_accuracy", "response_tokens_mean", "num_samples")
# CLI flag -> RegimeThresholds field; each flag defaults to None so only what the user sets is overridden.
THRESHOLD_FLAGS = {
    "--z": ("z", float),
    "--patience": ("patience", int),
    "--length-spike-ratio": ("length_spike_ratio", float),
    "--length-stable-tolerance": ("length_stable_tolerance", float),
}


def read_history(input_path: str) -> list[EvalPoint]:
    """Parse and validate an eval-history JSONL; one ValueError lists every bad row with its number."""
    path = Path(input_path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read --input {input_path}: {exc.strerror or exc}") from None
    points: list[EvalPoint] = []
    problems: list[str] = []
    last_step: int | None = None
    for row_number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"row {row_number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(
                f"{where}: invalid JSON ({exc.msg} at column {exc.colno}); write one object per line"
            )
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: expected a JSON object, got {type(row).__name__}")
            continue
        missing = [key for key in REQUIRED if key not in row]
        if missing:
            problems.append(
                f"{where}: missing key(s) {', '.join(missing)}; every row needs {', '.join(REQUIRED)}"
                " (null for a metric that was not measured)"
            )
            continue
        try:
            point = EvalPoint(**{key: row[key] for key in REQUIRED})
        except (ValueError, TypeError) as exc:
            problems.append(f"{where}: {exc}")
            continue
        if last_step is not None and point.step <= last_step:
            problems.append(
                f"{where}: step {point.step} is not after the previous step {last_step}; rows must be in"
                " strictly increasing step order (sort by step, drop duplicates)"
            )
        last_step = point.step if last_step is None else max(last_step, point.step)
        points.append(point)
    if not lines or not any(line.strip() for line in lines):
        problems.append("no rows; the first row must be the step-0 baseline eval")
    if problems:
        count = f"{len(problems)} problem{'s' if len(problems) > 1 else ''}"
        raise ValueError(f"{input_path}: {count}: " + " | ".join(problems))
    return points


def run(input_path: str, output_path: str, thresholds: RegimeThresholds | None = None) -> int:
    """Label every row of `input_path` and write one verdict per row to `output_path`; returns 0.

    Raises ValueError (naming the file and row) on bad input, before anything is written.
    """
    points = read_history(input_path)
    verdicts = classify_history(points, thresholds or RegimeThresholds())
    out = Path(output_path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as f:
            for verdict in verdicts:
                f.write(json.dumps(asdict(verdict)) + "\n")
    except OSError as exc:
        raise ValueError(f"cannot write --output {output_path}: {exc.strerror or exc}") from None
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `regime` flags, for this module's `main` or a parent CLI's sub-parser."""
    parser.add_argument("--input", required=True, help="eval-history JSONL, one row per eval, baseline first")
    parser.add_argument("--output", required=True, help="JSONL to write: one verdict row per input row")
    defaults = {f.name: f.default for f in fields(RegimeThresholds)}
    helps = {
        "z": "standard errors a difference must exceed to count",
        "patience": "consecutive evals below the peak before over-fitting is declared",
        "length_spike_ratio": "peak length / baseline length that counts as a spike",
        "length_stable_tolerance": "relative length change between evals that still counts as stable",
    }
    for flag, (name, kind) in THRESHOLD_FLAGS.items():
        parser.add_argument(flag, type=kind, default=None, help=f"{helps[name]} (default {defaults[name]})")


def thresholds_from_args(args: argparse.Namespace) -> RegimeThresholds:
    """RegimeThresholds with the flags the user set; ValueError names any bad value."""
    overrides = {name: getattr(args, name) for name, _ in THRESHOLD_FLAGS.values()}
    return RegimeThresholds(**{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    """Exit code 0 on success, 2 on bad input (one line on stderr, no traceback)."""
    parser = argparse.ArgumentParser(prog="sftlab regime", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2, already printed by argparse)
        return exc.code if isinstance(exc.code, int) else 2
    try:
        run(args.input, args.output, thresholds_from_args(args))
    except ValueError as exc:
        message = " ".join(str(exc).split("\n"))
        print(f"sftlab regime: error: {message}", file=sys.stderr)
        return 2
    print(f"labelled {args.input} -> {args.output}")
    return 0
