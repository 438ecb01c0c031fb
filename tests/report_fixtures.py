"""Aim repos for the report and Aim UI tests: one real short CPU run through the CLI, and synthetic runs.

`fitted_repo` trains the tiny model for 2 steps through `python -m sftlab fit` (HF backend, eval at every
step, an ID and an OOD Countdown task) with AimLogger *and* CSVLogger configured as a list, so the same run
also proves another Lightning logger can sit next to Aim. The run costs ~40 s on 2 cores, so it is made
once per session: test modules import the fixture, and a module-level cache keeps a second importing
module from training again (pytest makes one fixture definition per importing module).

`write_synthetic_run` writes a run with hand-chosen series (regime labels, length stages, HEx-PHI ASR per
category) that a 2-step CPU run cannot produce, for the figure and table checks that need them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import repo_root

RUN_NAME = "smoke-report"
MAX_STEPS = 2
EVAL_STEPS = [0, 1, 2]


@dataclass(frozen=True)
class FittedRun:
    repo: Path  # the Aim repo
    run_name: str
    run_dir: Path  # AimLogger's per-run folder
    csv_dir: Path  # CSVLogger's save_dir
    seconds: float
    stdout: str  # what the run printed (not a TTY: the progress callbacks' plain lines)


_CACHE: dict[str, FittedRun] = {}


def fit_tiny_run(tiny_model: str, root: Path) -> FittedRun:
    import contextlib
    import io
    import time

    from sftlab.cli import main

    config = yaml.safe_load((repo_root() / "configs/quickstart.yaml").read_text())
    trainer = config["trainer"]
    trainer["max_steps"] = MAX_STEPS
    trainer["logger"] = [
        {
            "class_path": "sftlab.aim_logger.AimLogger",
            "init_args": {
                "repo": str(root / "runs"),
                "run_name": RUN_NAME,
                "experiment": "report-test",
                "system_tracking_interval": None,
            },
        },
        {"class_path": "lightning.pytorch.loggers.CSVLogger", "init_args": {"save_dir": str(root / "csv")}},
    ]
    callback = trainer["callbacks"][0]["init_args"]
    callback["every_n_steps"] = 1
    callback["progress_bar"] = True
    trainer["callbacks"].append(
        {"class_path": "sftlab.callbacks.progress.SFTLabProgressBar", "init_args": {"log_every_n_steps": 1}}
    )
    task = callback["tasks"][0]
    task["init_args"].update(num_problems=4, max_tokens=16)
    ood = {
        "class_path": task["class_path"],
        "init_args": {**task["init_args"], "name": "countdown_ood", "group": "ood", "seed": 1},
    }
    callback["tasks"].append(ood)
    callback["backend"] = {"class_path": "sftlab.eval.backends.hf_backend.HFBackend"}
    config["model"]["model_name"] = tiny_model
    config["data"]["regime"]["init_args"]["train_size"] = 16
    root.mkdir(parents=True, exist_ok=True)
    path = root / "fit.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["fit", "--config", str(path)])
    assert code == 0, out.getvalue()[-2000:]
    seconds = time.perf_counter() - started
    run_dir = root / "runs" / "outputs" / RUN_NAME
    return FittedRun(root / "runs", RUN_NAME, run_dir, root / "csv", seconds, out.getvalue())


@pytest.fixture(scope="session")
def fitted_repo(tiny_model: str, tmp_path_factory: pytest.TempPathFactory) -> FittedRun:
    if "run" not in _CACHE:
        _CACHE["run"] = fit_tiny_run(tiny_model, tmp_path_factory.mktemp("fitted"))
    return _CACHE["run"]


def write_synthetic_run(
    repo: Path,
    name: str,
    metrics: Mapping[str, Sequence[tuple[int, float]]],
    params: Mapping[str, Any] | None = None,
) -> str:
    """Write one closed Aim run with `metrics` ({key: [(step, value), ...]}) and top-level `params`, keyed
    and contexted as AimLogger does (context {"stage": first segment}). Returns the run hash."""
    from aim import Run

    run = Run(repo=str(repo), experiment="synthetic", system_tracking_interval=None, log_system_params=False)
    run.name = name
    for key, value in (params or {}).items():
        run[key] = value
    for key, points in metrics.items():
        for step, value in points:
            run.track(float(value), name=key, step=step, context={"stage": key.split("/", 1)[0]})
    run_hash = run.hash
    run.close()
    return run_hash
