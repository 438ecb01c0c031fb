"""Log text (sample generations, regime reasons) to whichever loggers can hold it.

Aim gets `aim.Text` with a context; every logger's run folder also gets a JSONL file, so text is never
lost with a logger that has no text type.
"""

from __future__ import annotations

import json
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
