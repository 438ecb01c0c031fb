"""`sftlab data build`: make a data regime's training file from raw teacher outputs.

    python -m sftlab data build --regime math_cot --input RAW.jsonl --output OUT.parquet \\
        --report REPORT.json [--seed 0] [--on_bad_row error|skip] [--timeout 5] [--workers N] [--tokenizer NAME]

The rules live in `sftlab.data.build`; this module only parses flags, reads and writes files. Nothing is
written when the input has malformed rows and `--on_bad_row error` (the default).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from sftlab.data.build import BUILD_RULES, build_regime, write_parquet
from sftlab.data.example import DataError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sftlab data", description="Data tools.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    build = commands.add_parser(
        "build",
        help="verify raw teacher outputs and write one response per question",
        description=(
            "Verify raw {question, answer, response} rows with math-verify, keep one correct response per "
            "question (seeded), and write a parquet file the regime loads, plus a JSON report."
        ),
    )
    build.add_argument("--regime", required=True, help=f"one of: {', '.join(BUILD_RULES)}")
    build.add_argument("--input", required=True, help="raw rows: .jsonl/.json/.parquet file or hub id")
    build.add_argument("--output", required=True, help="output .parquet (the math_cot schema)")
    build.add_argument("--report", required=True, help="output .json report of counts and lengths")
    build.add_argument("--seed", type=int, default=0, help="seed of the per-question choice (default 0)")
    build.add_argument(
        "--on_bad_row",
        "--on-bad-row",
        dest="on_bad_row",
        choices=("error", "skip"),
        default="error",
        help="malformed rows: error (list them, write nothing) or skip (drop and count them)",
    )
    build.add_argument(
        "--timeout", type=float, default=5.0, help="seconds allowed per answer check (default 5)"
    )
    build.add_argument(
        "--workers", type=int, default=None, help="verifier processes (default: one per CPU, at most 8)"
    )
    build.add_argument(
        "--tokenizer", default=None, help="also report response lengths in this tokenizer's tokens"
    )
    return parser


def main(argv: list[str]) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command != "build":
        parser.print_help()
        return 2
    if not args.output.endswith(".parquet"):
        print(f"sftlab data build: --output must be a .parquet file, got {args.output}", file=sys.stderr)
        return 2
    if args.workers is not None and args.workers < 1:
        print(f"sftlab data build: --workers must be >= 1, got {args.workers}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        tokenizer = None
        if args.tokenizer:
            from transformers import AutoTokenizer

            from sftlab.models import resolve_model

            tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.tokenizer))
        result = build_regime(
            args.input,
            regime=args.regime,
            seed=args.seed,
            on_bad_row=args.on_bad_row,
            timeout_s=args.timeout,
            max_workers=args.workers,
            tokenizer=tokenizer,
        )
    except (DataError, ValueError) as exc:
        print(f"sftlab data build: {exc}", file=sys.stderr)
        return 2
    report = {**result.report, "input": args.input, "output": args.output, "tokenizer": args.tokenizer}
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    if not result.rows:
        print(
            f"sftlab data build: no question kept (see {args.report}); nothing written to {args.output}",
            file=sys.stderr,
        )
        return 1
    write_parquet(result.rows, args.output)
    dropped = ", ".join(f"{k}={v}" for k, v in report["dropped_rows_by_reason"].items() if v)
    print(
        f"kept {report['rows_kept']} of {report['questions_in']} questions ({report['rows_in']} rows in; "
        f"dropped rows: {dropped or 'none'}) in {time.perf_counter() - start:.1f}s; wrote {args.output} and "
        f"{args.report}"
    )
    if args.regime == "math_nocot":
        print(
            "train on it with MathNoCoT(source=..., derive_from_cot=false): the thinking is already removed"
        )
    return 0
