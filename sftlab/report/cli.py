"""Paper-style figures and one self-contained HTML page from the runs of an Aim repo.

`sftlab report --repo runs [--runs HASH_OR_NAME ...] [--group-by data_regime] --output DIR` reads runs from an Aim repo and writes DIR/index.html (one self-contained page) plus the figures as PNGs.
Input problems (no repo, no runs, an unknown run, a run without eval metrics) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sftlab.report.canvas import FigureResult, Style
from sftlab.report.figures import write_figures
from sftlab.report.html import write_html
from sftlab.report.reader import ReportError, RunData, read_runs


@dataclass(frozen=True)
class Report:
    page: Path
    runs: list[RunData]
    figures: list[FigureResult]


def make_report(
    repo: str | Path, output: str | Path, runs: Sequence[str] = (), group_by: str = "data_regime"
) -> Report:
    """Read the runs, draw the figures, write the page. Raises ReportError on input problems."""
    data = read_runs(repo, runs)
    out = Path(output)
    figures = write_figures(data, out, group_by)
    page = write_html(out / "index.html", data, figures, Style(data, group_by), str(repo))
    return Report(page, data, figures)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sftlab report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default="runs", help="Aim repo folder (holds .aim) or aim://host:port")
    parser.add_argument(
        "--runs",
        nargs="+",
        default=[],
        metavar="HASH_OR_NAME",
        help="runs to compare: run hash, unique hash prefix (>= 6 chars) or run name; default all runs",
    )
    parser.add_argument(
        "--group-by",
        default="data_regime",
        help="run param that colours and labels the runs, dotted for nested ones (schedule.global_batch_size,"
        " model_size_b, model.learning_rate from the config, experiment); default data_regime",
    )
    parser.add_argument("--output", required=True, help="folder for index.html and the PNGs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        report = make_report(args.repo, args.output, args.runs, args.group_by)
    except ReportError as exc:
        print(f"sftlab report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {report.page} ({len(report.runs)} run(s), {len(report.figures)} figures)")
    return 0
