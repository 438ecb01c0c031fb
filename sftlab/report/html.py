"""One self-contained HTML page: run table, baseline / lowest / best / final per run per metric, figures.

Self-contained means the page needs no other file and no network: CSS is inline and every PNG is
embedded as a base64 `data:image/png` URI (the PNGs also stay next to the page for slides and papers).
Knows nothing of Aim or matplotlib: it takes `RunData`, `FigureResult` and the summaries.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sftlab.report.canvas import FigureResult, Style
from sftlab.report.reader import RunData
from sftlab.report.summary import MetricSummary, Point, direction, summarize, table_keys

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Roboto, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #222; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; }
.meta { color: #666; font-size: 13px; }
table { border-collapse: collapse; font-size: 12.5px; margin: 8px 0 16px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; } td.k, th.k { text-align: left; }
td .s { color: #888; font-size: 11px; } .up { color: #1a7f37; } .down { color: #b42318; }
figure { margin: 16px 0 28px; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 13px; }
"""


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def _fmt(value: float) -> str:
    # Counts (tokens) as integers, shares (accuracy, ASR) with 3 decimals so columns line up.
    if value.is_integer() and abs(value) >= 1:
        return str(int(value))
    return f"{value:.4g}" if abs(value) >= 1000 else f"{value:.3f}"


def _cell(point: Point | None, baseline: Point | None = None, better: str | None = None) -> str:
    if point is None:
        return "<td>—</td>"
    cls = ""
    if baseline is not None and better is not None and point.value != baseline.value:
        improved = (point.value > baseline.value) == (better == "higher")
        cls = ' class="up"' if improved else ' class="down"'
    return f'<td><span{cls}>{_fmt(point.value)}</span> <span class="s">@{point.step}</span></td>'


def _param(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items() if v is not None)
    return "—" if value is None else str(value)


def runs_table(runs: Sequence[RunData], style: Style) -> str:
    cols = [style.group_by, "model_name", "model_size_b", "data_regime", "schedule", "seed"]
    cols = list(dict.fromkeys(cols))
    head = "".join(
        f"<th class=k>{html.escape(c)}</th>" for c in ["run", "hash", "experiment", *cols, "last step"]
    )
    rows = []
    for run in runs:
        cells = [run.name, run.run_hash[:12], run.experiment or "—", *(_param(run.param(c)) for c in cols)]
        tds = "".join(f"<td class=k>{html.escape(str(c))}</td>" for c in cells)
        rows.append(f"<tr>{tds}<td>{run.last_step}</td></tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def summary_rows(runs: Sequence[RunData]) -> list[tuple[RunData, str, MetricSummary]]:
    """(run, key, summary) for every tabulated metric a run has, grouped by metric."""
    out = []
    for key in table_keys(runs):
        for run in runs:
            if key in run.series:
                summary = summarize(run.series[key])
                if summary is not None:
                    out.append((run, key, summary))
    return out


def summary_table(runs: Sequence[RunData], style: Style) -> str:
    head = "".join(
        f"<th{' class=k' if i < 2 else ''}>{h}</th>"
        for i, h in enumerate(["metric", "run", "baseline (step 0)", "lowest", "best", "final", "evals"])
    )
    rows = []
    for run, key, s in summary_rows(runs):
        better = direction(key)
        rows.append(
            f"<tr><td class=k>{html.escape(key)}</td><td class=k>{html.escape(style.label(run))}</td>"
            f"{_cell(s.baseline)}{_cell(s.lowest, s.baseline, better)}{_cell(s.best, s.baseline, better)}"
            f"{_cell(s.final, s.baseline, better)}<td>{s.num_points}</td></tr>"
        )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def write_html(
    path: str | Path,
    runs: Sequence[RunData],
    figures: Sequence[FigureResult],
    style: Style,
    repo: str,
) -> Path:
    """Write the report page to `path`, images embedded; returns the path."""
    out = Path(path)
    now = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    parts = [
        "<!doctype html><html lang=en><head><meta charset=utf-8>",
        f"<title>sftlab report — {len(runs)} run(s)</title><style>{CSS}</style></head><body>",
        "<h1>sftlab report</h1>",
        f"<p class=meta>Aim repo <code>{html.escape(repo)}</code> · {len(runs)} run(s) · grouped by"
        f" <code>{html.escape(style.group_by)}</code> · {now}</p>",
        "<h2>Runs</h2>",
        runs_table(runs, style),
        "<h2>Baseline, lowest, best and final value per run</h2>",
        "<p class=meta>Baseline = the step-0 eval (untrained model); lowest = the bottom of the dip; best ="
        " highest accuracy/score or lowest ASR (— where no direction is better); value @ step. Green: better"
        " than baseline, red: worse.</p>",
        summary_table(runs, style),
        "<h2>Figures</h2>",
    ]
    for fig in figures:
        parts.append(
            f'<figure id="{html.escape(fig.name)}"><img alt="{html.escape(fig.title)}" src="{data_uri(fig.path)}">'
            f"<figcaption><b>{html.escape(fig.title)}.</b> {html.escape(fig.caption)}"
            f" (<code>{html.escape(fig.path.name)}</code>)</figcaption></figure>"
        )
    parts.append("</body></html>")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(parts), encoding="utf-8")
    return out
