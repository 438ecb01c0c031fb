"""Log text (sample generations, regime reasons) and value distributions to whichever loggers can hold them.

Aim gets `aim.Text` / `aim.Distribution` with a context; every logger's run folder also gets a JSONL file
for text, so text is never lost with a logger that has no text type. Distributions are Aim-only: the
numbers behind them (e.g. every response's token count) are already in the eval records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


def run_dir(trainer: pl.Trainer) -> Path:
    """The run's folder, as `trainer.log_dir` resolves it but without its broadcast: `log_dir` is a
    collective call and would hang a DDP job when only rank 0 asks."""
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    if trainer.loggers:
        logger = trainer.loggers[0]
        folder = logger.log_dir if isinstance(logger, (TensorBoardLogger, CSVLogger)) else logger.save_dir
        if folder:
            return Path(folder)
    return Path(trainer.default_root_dir)


def _aim_runs(trainer: pl.Trainer) -> list[Any]:
    """The Aim runs among the trainer's loggers (sftlab's AimLogger or Aim's own)."""
    runs = []
    for logger in trainer.loggers:
        if type(logger).__module__.startswith(("aim.", "sftlab.aim_logger")):
            experiment = getattr(logger, "experiment", None)
            if experiment is not None:
                runs.append(experiment)
    return runs


def log_distribution(
    trainer: pl.Trainer, name: str, values: Sequence[float], step: int, context: dict[str, Any]
) -> None:
    """Track `values` as one `aim.Distribution` under `name` at `step` (e.g. every response's length at
    one eval, shown by Aim as a histogram over steps). Rank 0 only; a no-op without Aim or values."""
    if not trainer.is_global_zero or not values:
        return
    runs = _aim_runs(trainer)
    if not runs:
        return
    from aim import Distribution

    # Integer token counts: one bin per token up to 64 distinct lengths, else 64 bins.
    bins = max(1, min(64, int(max(values) - min(values)) + 1))
    for run in runs:
        run.track(Distribution(samples=list(values), bin_count=bins), name=name, step=step, context=context)


def log_texts(trainer: pl.Trainer, name: str, texts: list[str], step: int, context: dict[str, Any]) -> None:
    """Track each text under `name` with `context` (e.g. {"task": "countdown", "step": 40}). Rank 0 only."""
    if not trainer.is_global_zero or not texts:
        return
    for logger in trainer.loggers:
        experiment = getattr(logger, "experiment", None)
        if type(logger).__module__.startswith(("aim.", "sftlab.aim_logger")) and experiment is not None:
            from aim import Text

            for i, text in enumerate(texts):
                experiment.track(Text(text), name=name, step=step, context={**context, "index": i})
    path = run_dir(trainer) / "texts.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for text in texts:
            f.write(json.dumps({"name": name, "step": step, **context, "text": text}) + "\n")
