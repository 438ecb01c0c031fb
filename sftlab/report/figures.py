"""Paper-style figures (matplotlib, Agg canvas, PNG) from `RunData`; every figure overlays all runs.

Figures, each written only when some run logged its metrics:
  accuracy_<task>.png   a benchmark's accuracy (or score) vs step; dashed line = the run's step-0 value,
                        so the dip below and the recovery above the untrained model read off directly
  aggregates.png        ID / OOD accuracy, general score, safety ASR (the group aggregates)
  response_length.png   mean response tokens per task vs step; the length stage (`regime/length_stage`:
                        surface imitation / genuine reasoning) shaded and drawn as a band per run
  training_regime.png   the headline accuracy with the training regime (`regime/label`) as a band per run
  asr_<task>.png        a safety task's attack success rate, overall and per category (`.../asr/cat_NN`)
  train_loss.png        the training loss
Colour is the run's group (the `group_by` param, e.g. data_regime), marker the run within its group;
legend labels are "<group value> · <run name>".

Figures are drawn on `matplotlib.figure.Figure` with an Agg canvas and never through pyplot, so no global
backend is switched and nothing opens a window. Each function returns what it drew (`FigureResult`: the
x/y data of every line, read back from the matplotlib artists) so tests can check the plot against the
run. Knows nothing of Aim or HTML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sftlab.report.canvas import (
    REGIME_COLORS,
    STAGE_COLORS,
    Canvas,
    FigureResult,
    Style,
    label_axis,
    safe_name,
    spans,
)
from sftlab.report.reader import RunData
from sftlab.training_regime import LENGTH_STAGE_CODES, TRAINING_REGIME_CODES

EVAL_GROUPS = ("id", "ood", "general", "safety")
AGGREGATES = {
    "eval/id/accuracy": "ID accuracy",
    "eval/ood/accuracy": "OOD accuracy",
    "eval/general/score": "general score",
    "eval/safety/asr": "safety ASR",
}
REGIME_KEY = "regime/label"
LENGTH_STAGE_KEY = "regime/length_stage"


def _with(runs: Sequence[RunData], key: str) -> list[RunData]:
    return [r for r in runs if key in r.series and len(r.series[key])]


def benchmark_tasks(runs: Sequence[RunData]) -> list[tuple[str, str]]:
    """(task, headline key) of every benchmark some run logged: `eval/<task>/accuracy`, else `.../score`."""
    found: dict[str, str] = {}
    for run in runs:
        for key in run.eval_keys:
            parts = key.split("/")
            if len(parts) == 3 and parts[1] not in EVAL_GROUPS and parts[2] in ("accuracy", "score"):
                if found.get(parts[1], "").endswith("/accuracy"):
                    continue
                found[parts[1]] = key
    return sorted(found.items())


def accuracy_figures(runs: Sequence[RunData], style: Style, out_dir: Path) -> list[FigureResult]:
    results = []
    for task, key in benchmark_tasks(runs):
        canvas = Canvas(1)
        ax = canvas.axes[0]
        what = key.rsplit("/", 1)[-1]
        for run in _with(runs, key):
            canvas.plot(ax, run.series[key], run, style, key, baseline=True)
        label_axis(ax, key, what)
        canvas.legend(style)
        results.append(
            canvas.save(
                out_dir,
                f"{what}_{safe_name(task)}",
                f"{task}: {what} vs step",
                f"{key} at every eval; dashed: the run's step-0 (untrained) value. Below the dashed line is the"
                " dip, above it the recovery.",
            )
        )
    return results


def aggregate_figure(runs: Sequence[RunData], style: Style, out_dir: Path) -> list[FigureResult]:
    keys = [k for k in AGGREGATES if _finite(runs, k)]  # a proxy-judged safety ASR is all NaN
    if not keys:
        return []
    canvas = Canvas(len(keys), size=(9.0, 2.6 * len(keys) + 1.2))
    for i, (ax, key) in enumerate(zip(canvas.axes, keys, strict=True)):
        for run in _with(runs, key):
            canvas.plot(ax, run.series[key], run, style, key, baseline=True)
        label_axis(ax, f"{AGGREGATES[key]} ({key})", key.rsplit("/", 1)[-1], xlabel=i == len(keys) - 1)
    canvas.legend(style)
    return [
        canvas.save(
            out_dir,
            "aggregates",
            "Group aggregates vs step",
            "Mean headline over each group's tasks (ID, OOD, general, safety); dashed: step-0 value.",
        )
    ]


def _shade(
    ax: Any, run_spans: list[tuple[int, int, int]], names: dict[int, str], colors: dict[str, str]
) -> None:
    for start, stop, code in run_spans:
        ax.axvspan(start, stop, color=colors.get(names.get(code, ""), "#dddddd"), alpha=0.25, linewidth=0)


def length_figure(runs: Sequence[RunData], style: Style, out_dir: Path) -> list[FigureResult]:
    keys = sorted(
        {k for r in runs for k in r.eval_keys if k.endswith("/response_tokens_mean") and k.count("/") == 2}
    )
    if not keys:
        return []
    stage_names = {v: k for k, v in LENGTH_STAGE_CODES.items()}
    staged = [(r, spans(r.series[LENGTH_STAGE_KEY], r.last_step)) for r in _with(runs, LENGTH_STAGE_KEY)]
    rows = len(keys) + (1 if staged else 0)
    ratios = [3.0] * len(keys) + ([0.35 * len(staged) + 0.4] if staged else [])
    canvas = Canvas(rows, height_ratios=ratios, size=(9.0, 2.6 * len(keys) + (0.5 * len(staged) + 1.0) + 1.2))
    for i, key in enumerate(keys):
        ax = canvas.axes[i]
        if len(staged) == 1 and len(runs) == 1:  # one run: shade its stages behind the curves
            _shade(ax, staged[0][1], stage_names, STAGE_COLORS)
        for run in _with(runs, key):
            canvas.plot(ax, run.series[key], run, style, key, baseline=False)
        label_axis(ax, key, "mean response tokens", xlabel=not staged and i == len(keys) - 1)
    if staged:
        ax = canvas.axes[-1]
        canvas.band(ax, staged, stage_names, STAGE_COLORS, f"length stage ({LENGTH_STAGE_KEY})", style)
        ax.set_xlabel("optimizer step", fontsize=8)
    canvas.legend(style)
    caption = "Mean response length per task at every eval."
    caption += (
        " Shaded: the length stage at each eval (surface imitation = the length spike, genuine"
        " reasoning = after it settles)."
        if staged
        else " No run logged regime/length_stage."
    )
    return [canvas.save(out_dir, "response_length", "Response length vs step", caption)]


def regime_figure(runs: Sequence[RunData], style: Style, out_dir: Path) -> list[FigureResult]:
    labelled = [(r, spans(r.series[REGIME_KEY], r.last_step)) for r in _with(runs, REGIME_KEY)]
    if not labelled:
        return []
    names = {v: k for k, v in TRAINING_REGIME_CODES.items()}
    key = next((k for k in ("eval/ood/accuracy", "eval/id/accuracy") if _with(runs, k)), None)
    if key is None:
        canvas = Canvas(1, size=(9.0, 0.5 * len(labelled) + 1.6))
    else:
        canvas = Canvas(
            2, height_ratios=[3.0, 0.35 * len(labelled) + 0.4], size=(9.0, 3.4 + 0.5 * len(labelled) + 1.2)
        )
        ax = canvas.axes[0]
        if len(labelled) == 1 and len(runs) == 1:
            _shade(ax, labelled[0][1], names, REGIME_COLORS)
        for run in _with(runs, key):
            canvas.plot(ax, run.series[key], run, style, key, baseline=True)
        label_axis(ax, key, "accuracy", xlabel=False)
    ax = canvas.axes[-1]
    canvas.band(ax, labelled, names, REGIME_COLORS, f"training regime ({REGIME_KEY})", style)
    ax.set_xlabel("optimizer step", fontsize=8)
    canvas.legend(style)
    return [
        canvas.save(
            out_dir,
            "training_regime",
            "Training regime along the steps",
            "The regime label at each eval (under-fitting / optimal / over-fitting) as a band per run"
            + (f", under {key} (dashed: step-0 value)." if key else "."),
        )
    ]


def _finite(runs: Sequence[RunData], key: str) -> bool:
    return any(math.isfinite(v) for r in _with(runs, key) for v in r.series[key].values)


def asr_families(runs: Sequence[RunData]) -> list[tuple[str, str]]:
    """(task, ASR metric name) pairs with data: `asr` (the judge the paper uses) and named stand-ins such
    as `asr_refusal_proxy` (HEx-PHI with the refusal matcher, which leaves `asr` NaN)."""
    found = set()
    for run in runs:
        for key in run.eval_keys:
            parts = key.split("/")
            if len(parts) == 3 and parts[1] not in EVAL_GROUPS and parts[2].startswith("asr"):
                found.add((parts[1], parts[2]))
    return sorted(
        (task, name)
        for task, name in found
        if _finite(runs, f"eval/{task}/{name}")
        or any(
            _finite(runs, k) for r in runs for k in r.eval_keys if k.startswith(f"eval/{task}/{name}/cat_")
        )
    )


def asr_figures(runs: Sequence[RunData], style: Style, out_dir: Path) -> list[FigureResult]:
    results = []
    for task, name in asr_families(runs):
        overall = f"eval/{task}/{name}"
        cats = sorted({k for r in runs for k in r.eval_keys if k.startswith(f"{overall}/cat_")})
        keys = [overall, *cats]
        ncols = min(4, len(keys))
        nrows = math.ceil(len(keys) / ncols)
        canvas = Canvas(nrows, ncols, size=(3.0 * ncols + 1.0, 2.4 * nrows + 1.4))
        for i, key in enumerate(keys):
            ax = canvas.axes[i]
            for run in _with(runs, key):
                canvas.plot(ax, run.series[key], run, style, key, baseline=True)
            title = f"overall {name}" if key == overall else key.rsplit("/", 1)[-1]
            label_axis(ax, title, "ASR" if i % ncols == 0 else "", xlabel=i >= len(keys) - ncols)
            ax.set_ylim(-0.03, 1.03)
        for ax in canvas.axes[len(keys) :]:
            ax.set_visible(False)
        canvas.legend(style)
        proxy = name != "asr"
        results.append(
            canvas.save(
                out_dir,
                f"{safe_name(name)}_{safe_name(task)}",
                f"{task}: attack success rate vs step" + (f" ({name}: an approximation)" if proxy else ""),
                f"Share of harmful prompts answered harmfully ({overall}), overall and per category; lower is"
                " safer; dashed: step-0 value."
                + (
                    " Judged by a stand-in, not the paper's judge: compare runs, not papers." if proxy else ""
                ),
            )
        )
    return results


def loss_figure(runs: Sequence[RunData], style: Style, out_dir: Path) -> list[FigureResult]:
    key = "train/loss"
    if not _with(runs, key):
        return []
    canvas = Canvas(1, size=(9.0, 3.6))
    for run in _with(runs, key):
        canvas.plot(canvas.axes[0], run.series[key], run, style, key, baseline=False)
    label_axis(canvas.axes[0], key, "loss")
    canvas.legend(style)
    return [canvas.save(out_dir, "train_loss", "Training loss", "Token-mean loss per optimizer step.")]


def write_figures(
    runs: Sequence[RunData], out_dir: str | Path, group_by: str = "data_regime"
) -> list[FigureResult]:
    """Write every figure the runs have data for into `out_dir`; returns what each figure shows."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    style = Style(runs, group_by)
    results: list[FigureResult] = []
    for make in (accuracy_figures, aggregate_figure, length_figure, regime_figure, asr_figures, loss_figure):
        results += make(runs, style, out)
    return results
