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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sftlab.report.reader import RunData, Series
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
REGIME_COLORS = {"underfitting": "#9ecae1", "optimal": "#74c476", "overfitting": "#fb6a4a"}
STAGE_COLORS = {"surface_imitation": "#fdae6b", "genuine_reasoning": "#a1d99b"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
DPI = 110


@dataclass(frozen=True)
class Line:
    """One drawn line: its subplot, legend label, kind and the x/y data matplotlib holds for it."""

    axis: str
    label: str
    kind: Literal["metric", "baseline"]
    steps: tuple[float, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Band:
    """Labelled step spans drawn for one run: (start, end, label name)."""

    axis: str
    label: str
    spans: tuple[tuple[int, int, str], ...]


@dataclass(frozen=True)
class FigureResult:
    name: str
    path: Path
    title: str
    caption: str
    lines: tuple[Line, ...] = ()
    bands: tuple[Band, ...] = field(default_factory=tuple)

    def lines_on(self, axis: str, kind: str = "metric") -> list[Line]:
        return [line for line in self.lines if line.axis == axis and line.kind == kind]


def spans(series: Series, end: int) -> list[tuple[int, int, int]]:
    """Consecutive evals with the same code merged into (start, end, code); a label holds from its eval
    to the next one, the last to `end` (the run's last step). NaN points are skipped."""
    points = [(s, int(v)) for s, v in zip(series.steps, series.values, strict=True) if math.isfinite(v)]
    out: list[tuple[int, int, int]] = []
    for i, (step, code) in enumerate(points):
        stop = points[i + 1][0] if i + 1 < len(points) else max(end, step)
        if out and out[-1][2] == code:
            out[-1] = (out[-1][0], stop, code)
        else:
            out.append((step, stop, code))
    return out


class Style:
    """Colour per group value (tab10 order of first appearance), marker per run within its group."""

    def __init__(self, runs: Sequence[RunData], group_by: str) -> None:
        from matplotlib import colormaps

        self.group_by = group_by
        palette = colormaps["tab10"].colors
        groups: dict[str, int] = {}
        self._style: dict[str, tuple[Any, str]] = {}
        counts: dict[str, int] = {}
        for run in runs:
            group = self.group(run)
            groups.setdefault(group, len(groups))
            n = counts.get(group, 0)
            counts[group] = n + 1
            self._style[run.run_hash] = (palette[groups[group] % len(palette)], MARKERS[n % len(MARKERS)])

    def group(self, run: RunData) -> str:
        value = run.param(self.group_by)
        return "n/a" if value is None else str(value)

    def label(self, run: RunData) -> str:
        return f"{self.group(run)} · {run.name}"

    def color(self, run: RunData) -> Any:
        return self._style[run.run_hash][0]

    def marker(self, run: RunData) -> str:
        return self._style[run.run_hash][1]


class _Canvas:
    """One figure being drawn: records every line and band as it is plotted."""

    def __init__(
        self,
        nrows: int,
        ncols: int = 1,
        *,
        height_ratios: Sequence[float] | None = None,
        size: tuple[float, float] = (9.0, 4.8),
        sharex: bool = True,
    ) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=size, dpi=DPI, layout="constrained")
        FigureCanvasAgg(self.figure)
        axes = self.figure.subplots(
            nrows, ncols, squeeze=False, sharex=sharex, gridspec_kw={"height_ratios": height_ratios}
        )
        self.axes = [ax for row in axes for ax in row]
        self.lines: list[Line] = []
        self.bands: list[Band] = []

    def plot(
        self, ax: Any, series: Series, run: RunData, style: Style, title: str, *, baseline: bool
    ) -> None:
        (line,) = ax.plot(
            series.steps,
            series.values,
            color=style.color(run),
            marker=style.marker(run),
            markersize=4,
            linewidth=1.6,
            label=style.label(run),
        )
        self.lines.append(Line(title, style.label(run), "metric", *_xy(line)))
        if baseline and series.baseline is not None and math.isfinite(series.baseline):
            base = ax.axhline(
                series.baseline, color=style.color(run), linestyle="--", linewidth=1.0, alpha=0.8
            )
            self.lines.append(Line(title, style.label(run), "baseline", *_xy(base)))

    def band(
        self,
        ax: Any,
        rows: list[tuple[RunData, list[tuple[int, int, int]]]],
        names: dict[int, str],
        colors: dict[str, str],
        title: str,
        style: Style,
    ) -> None:
        """One row per run of coloured spans along the step axis."""
        from matplotlib.patches import Patch

        seen: set[str] = set()
        for i, (run, run_spans) in enumerate(rows):
            width_min = max(1.0, 0.01 * max(run.last_step, 1))
            for start, stop, code in run_spans:
                name = names.get(code, str(code))
                ax.broken_barh(
                    [(start, max(stop - start, width_min))],
                    (i - 0.4, 0.8),
                    facecolors=colors.get(name, "#cccccc"),
                    edgecolor="white",
                )
                seen.add(name)
            self.bands.append(
                Band(title, style.label(run), tuple((a, b, names.get(c, str(c))) for a, b, c in run_spans))
            )
        ax.set_yticks(range(len(rows)), [style.label(run) for run, _ in rows], fontsize=7)
        ax.set_ylim(-0.6, len(rows) - 0.4)
        ax.set_title(title, fontsize=9, loc="left")
        handles = [Patch(color=colors[n], label=n.replace("_", " ")) for n in colors if n in seen]
        ax.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)

    def legend(self, style: Style) -> None:
        handles, labels = [], []
        for ax in self.axes:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                if label not in labels and not label.startswith("_"):
                    handles.append(handle)
                    labels.append(label)
        if handles:
            self.figure.legend(
                handles,
                labels,
                loc="outside lower center",
                ncol=min(len(labels), 3),
                title=f"{style.group_by} · run",
                fontsize=8,
                title_fontsize=8,
            )

    def save(self, out_dir: Path, name: str, title: str, caption: str) -> FigureResult:
        self.figure.suptitle(title, fontsize=11)
        path = out_dir / f"{name}.png"
        self.figure.savefig(path, dpi=DPI)
        return FigureResult(name, path, title, caption, tuple(self.lines), tuple(self.bands))


def _xy(line: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(float(x) for x in line.get_xdata()), tuple(float(y) for y in line.get_ydata())


def _label_axis(ax: Any, title: str, ylabel: str, *, xlabel: bool = True) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_ylabel(ylabel, fontsize=8)
    if xlabel:
        ax.set_xlabel("optimizer step", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=7)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


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
        canvas = _Canvas(1)
        ax = canvas.axes[0]
        what = key.rsplit("/", 1)[-1]
        for run in _with(runs, key):
            canvas.plot(ax, run.series[key], run, style, key, baseline=True)
        _label_axis(ax, key, what)
        canvas.legend(style)
        results.append(
            canvas.save(
                out_dir,
                f"{what}_{_safe(task)}",
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
    canvas = _Canvas(len(keys), size=(9.0, 2.6 * len(keys) + 1.2))
    for i, (ax, key) in enumerate(zip(canvas.axes, keys, strict=True)):
        for run in _with(runs, key):
            canvas.plot(ax, run.series[key], run, style, key, baseline=True)
        _label_axis(ax, f"{AGGREGATES[key]} ({key})", key.rsplit("/", 1)[-1], xlabel=i == len(keys) - 1)
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
    canvas = _Canvas(
        rows, height_ratios=ratios, size=(9.0, 2.6 * len(keys) + (0.5 * len(staged) + 1.0) + 1.2)
    )
    for i, key in enumerate(keys):
        ax = canvas.axes[i]
        if len(staged) == 1 and len(runs) == 1:  # one run: shade its stages behind the curves
            _shade(ax, staged[0][1], stage_names, STAGE_COLORS)
        for run in _with(runs, key):
            canvas.plot(ax, run.series[key], run, style, key, baseline=False)
        _label_axis(ax, key, "mean response tokens", xlabel=not staged and i == len(keys) - 1)
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
        canvas = _Canvas(1, size=(9.0, 0.5 * len(labelled) + 1.6))
    else:
        canvas = _Canvas(
            2, height_ratios=[3.0, 0.35 * len(labelled) + 0.4], size=(9.0, 3.4 + 0.5 * len(labelled) + 1.2)
        )
        ax = canvas.axes[0]
        if len(labelled) == 1 and len(runs) == 1:
            _shade(ax, labelled[0][1], names, REGIME_COLORS)
        for run in _with(runs, key):
            canvas.plot(ax, run.series[key], run, style, key, baseline=True)
        _label_axis(ax, key, "accuracy", xlabel=False)
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
        canvas = _Canvas(nrows, ncols, size=(3.0 * ncols + 1.0, 2.4 * nrows + 1.4))
        for i, key in enumerate(keys):
            ax = canvas.axes[i]
            for run in _with(runs, key):
                canvas.plot(ax, run.series[key], run, style, key, baseline=True)
            title = f"overall {name}" if key == overall else key.rsplit("/", 1)[-1]
            _label_axis(ax, title, "ASR" if i % ncols == 0 else "", xlabel=i >= len(keys) - ncols)
            ax.set_ylim(-0.03, 1.03)
        for ax in canvas.axes[len(keys) :]:
            ax.set_visible(False)
        canvas.legend(style)
        proxy = name != "asr"
        results.append(
            canvas.save(
                out_dir,
                f"{_safe(name)}_{_safe(task)}",
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
    canvas = _Canvas(1, size=(9.0, 3.6))
    for run in _with(runs, key):
        canvas.plot(canvas.axes[0], run.series[key], run, style, key, baseline=False)
    _label_axis(canvas.axes[0], key, "loss")
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
