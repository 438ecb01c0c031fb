"""The drawing layer of the report figures: run styles (colour per group, marker per run), one matplotlib
`Figure` on an Agg canvas with its lines and bands, and `FigureResult`, the x/y data read back from the
artists so tests can check a plot against its run. Knows nothing of which figures exist (figures.py) or of
Aim and HTML.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sftlab.report.reader import RunData, Series

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


class Canvas:
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
        self.lines.append(Line(title, style.label(run), "metric", *xy(line)))
        if baseline and series.baseline is not None and math.isfinite(series.baseline):
            base = ax.axhline(
                series.baseline, color=style.color(run), linestyle="--", linewidth=1.0, alpha=0.8
            )
            self.lines.append(Line(title, style.label(run), "baseline", *xy(base)))

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


def xy(line: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return tuple(float(x) for x in line.get_xdata()), tuple(float(y) for y in line.get_ydata())


def label_axis(ax: Any, title: str, ylabel: str, *, xlabel: bool = True) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=9, loc="left")
    ax.set_ylabel(ylabel, fontsize=8)
    if xlabel:
        ax.set_xlabel("optimizer step", fontsize=8)
    ax.grid(True, alpha=0.3)
    ax.tick_params(labelsize=7)


def safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
