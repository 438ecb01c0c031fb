"""Read Aim runs into plain dataclasses: each run's params and every metric as step/value arrays.

Everything downstream (figures, tables, tests) works on `RunData` and `Series` and never touches Aim. This
module only reads run data. One caveat of Aim 3.29: a run is listed and readable only after Aim has
*indexed* it, which `aim up` does in the background and a training process never does. So before reading,
runs whose index entry is missing or stale are indexed here (Aim's own `RepoIndexManager.index`, what
`aim up` and `aim storage reindex` run); that writes Aim's index, never a run. When another process (an
`aim up` serving this repo) holds the index, that process keeps it fresh and the index is read as it is.

Problems the user can fix (no repo, no runs, unknown run, a run without eval metrics) raise `ReportError`
with a one-line message; `sftlab report` prints it and exits 2.
"""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sftlab.metric_names import EVAL_ERRORS, EVAL_LAG_STEPS, EVAL_SKIPPED, EVAL_TIME_S

# Metrics GenerationEval logs about the eval itself, not about the model: no eval *results*.
EVAL_BOOKKEEPING = (EVAL_ERRORS, EVAL_TIME_S, EVAL_LAG_STEPS, EVAL_SKIPPED)


class ReportError(Exception):
    """A problem with the report's input, explained in one line."""


@dataclass(frozen=True)
class Series:
    """One metric of one run: steps ascending, one finite-or-NaN value per step."""

    key: str
    steps: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.steps) != len(self.values):
            raise ValueError(f"{self.key}: {len(self.steps)} steps but {len(self.values)} values")

    def __len__(self) -> int:
        return len(self.steps)

    def at(self, step: int) -> float | None:
        for s, v in zip(self.steps, self.values, strict=True):
            if s == step:
                return v
        return None

    @property
    def baseline(self) -> float | None:
        """The value at step 0 (the untrained model), or None when step 0 was not evaluated."""
        return self.at(0)


@dataclass(frozen=True)
class RunData:
    """An Aim run as plain data. `params` are its top-level run params (data_regime, model_name,
    model_size_b, schedule, seed, git_commit, config, ...); `series` maps metric key to its series."""

    run_hash: str
    name: str
    experiment: str | None
    creation_time: float | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    series: Mapping[str, Series] = field(default_factory=dict)

    def param(self, path: str) -> Any:
        """A param by dotted path (`schedule.global_batch_size`); falls back to the resolved config
        (`model.learning_rate` finds `config.model.learning_rate`); `name`/`experiment`/`hash` work too."""
        special = {"name": self.name, "experiment": self.experiment, "hash": self.run_hash}
        if path in special:
            return special[path]
        for root in (self.params, self.params.get("config")):
            value: Any = root
            for part in path.split("."):
                if not isinstance(value, Mapping) or part not in value:
                    value = None
                    break
                value = value[part]
            if value is not None:
                return value
        return None

    @property
    def eval_keys(self) -> list[str]:
        """Keys of the eval results this run logged (`eval/...`, without the eval's bookkeeping)."""
        return sorted(k for k in self.series if k.startswith("eval/") and k not in EVAL_BOOKKEEPING)

    @property
    def last_step(self) -> int:
        return max((s.steps[-1] for s in self.series.values() if len(s)), default=0)


def _repo_path(path: str | Path) -> str:
    text = str(path)
    if text.startswith("aim://"):
        return text
    folder = Path(text).expanduser()
    if folder.name == ".aim":  # accept the .aim folder itself
        folder = folder.parent
    return str(folder)


def open_repo(path: str | Path) -> Any:
    """The Aim repo at `path` (the folder holding `.aim`, or `aim://host:port`), indexed for reading."""
    from aim import Repo

    location = _repo_path(path)
    if location.startswith("aim://"):
        return Repo(location)
    if not Path(location).is_dir():
        raise ReportError(f"no such folder: --repo {path}")
    if not Repo.exists(location):
        raise ReportError(
            f"{path} is not an Aim repo (no .aim folder in it); pass the folder given to"
            " AimLogger(repo=...), e.g. --repo runs"
        )
    repo = Repo(location)
    _refresh_index(repo)
    return repo


def _refresh_index(repo: Any) -> None:
    from aim.sdk.index_manager import RepoIndexManager

    try:
        manager = RepoIndexManager.get_index_manager(repo)
        index = repo.request_tree("meta", read_only=True)
        outdated = getattr(manager, "_is_run_index_outdated", lambda run_hash, index: True)
        for run_hash in repo.list_all_runs():
            if outdated(run_hash, index):
                manager.index(run_hash)
    except Exception as exc:  # noqa: BLE001 - a busy index is not fatal: its holder keeps it fresh
        print(
            f"sftlab report: note: could not refresh the Aim index ({type(exc).__name__}); reading it as is",
            file=sys.stderr,
        )


def _known(runs: Sequence[tuple[str, str]]) -> str:
    shown = ", ".join(f"{name} ({run_hash[:8]})" for run_hash, name in runs[:10])
    return shown + (f", ... ({len(runs)} runs)" if len(runs) > 10 else "")


def resolve_runs(selectors: Sequence[str], runs: Sequence[tuple[str, str]]) -> list[str]:
    """Run hashes for `selectors` (a full hash, a unique hash prefix of >= 6 characters, or a run name)
    among `runs` = [(hash, name), ...], in the order given. Every unknown or ambiguous selector is reported
    at once."""
    problems, chosen = [], []
    names = sorted({name for _, name in runs})
    for selector in selectors:
        matches = [h for h, name in runs if h == selector]
        matches = matches or [h for h, name in runs if name == selector]
        if not matches and len(selector) >= 6:
            matches = [h for h, _ in runs if h.startswith(selector)]
        if len(matches) == 1:
            if matches[0] not in chosen:
                chosen.append(matches[0])
        elif matches:
            problems.append(
                f"{selector!r} matches {len(matches)} runs ({', '.join(m[:8] for m in matches)}); pass a hash"
            )
        else:
            close = difflib.get_close_matches(selector, names, n=2)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            problems.append(f"unknown run {selector!r}{hint}")
    if problems:
        raise ReportError("; ".join(problems) + f". Runs in the repo: {_known(runs)}")
    return chosen


def _series(metric: Any) -> Series:
    steps, columns = metric.data.items_list()
    values = tuple(float(v) if v is not None else math.nan for v in columns[0])
    pairs = sorted(zip((int(s) for s in steps), values, strict=True))
    return Series(metric.name, tuple(s for s, _ in pairs), tuple(v for _, v in pairs))


def read_run(run: Any) -> RunData:
    """A `RunData` from an Aim `Run` (read-only). System metrics (`__system__*`) are skipped; a key logged
    under several contexts keeps the one whose `stage` is its first segment (how AimLogger logs)."""
    series: dict[str, Series] = {}
    for metric in run.metrics():
        if metric.name.startswith("__"):
            continue
        stage = metric.context.to_dict().get("stage")
        if metric.name in series and stage != metric.name.split("/", 1)[0]:
            continue
        series[metric.name] = _series(metric)
    try:
        params = dict(run[...])
    except Exception:  # noqa: BLE001 - a run without params reads as an empty dict
        params = {}
    params.pop("__system_params", None)
    return RunData(
        run_hash=run.hash,
        name=run.name or run.hash,
        experiment=run.experiment,
        creation_time=run.creation_time,
        params=params,
        series=dict(sorted(series.items())),
    )


def read_runs(repo_path: str | Path, selectors: Sequence[str] = ()) -> list[RunData]:
    """Read the runs chosen by `selectors` (all runs when empty) from the Aim repo at `repo_path`.

    Chosen runs must have eval metrics (ReportError otherwise). Without selectors, runs without eval
    metrics are skipped with a note, and it is an error only if none is left.
    """
    from aim import Run

    repo = open_repo(repo_path)
    listed = [(run.hash, run.name or run.hash) for run in repo.iter_runs()]
    if not listed:
        raise ReportError(
            f"no runs in the Aim repo {repo_path}; train with AimLogger(repo={repo_path!s}) first"
        )
    hashes = resolve_runs(selectors, listed) if selectors else [h for h, _ in listed]
    runs = [read_run(Run(h, repo=repo, read_only=True)) for h in hashes]
    without = [r for r in runs if not r.eval_keys]
    if without and selectors:
        names = ", ".join(f"{r.name} ({r.run_hash[:8]})" for r in without)
        raise ReportError(
            f"no eval metrics in run {names}: it logged no eval/* results (was GenerationEval in its"
            " callbacks, and did its evals succeed? see eval/errors)"
        )
    for r in without:
        print(
            f"sftlab report: note: skipping run {r.name} ({r.run_hash[:8]}): no eval metrics", file=sys.stderr
        )
    runs = [r for r in runs if r.eval_keys]
    if not runs:
        raise ReportError(f"no run in {repo_path} has eval metrics (eval/*); nothing to report")
    if not selectors:  # creation order: colours and rows stay put as the repo grows
        runs.sort(key=lambda r: (r.creation_time or 0.0, r.run_hash))
    return runs
