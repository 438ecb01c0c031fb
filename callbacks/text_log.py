"""Log text (sample generations, regime reasons) to whichever loggers can hold it.

Aim gets `aim.Text` with a context; every logger's run folder also gets a JSONL file, so text is never
lost with a logger that has no text type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightning.pytorch as pl


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
    if trainer.log_dir:
        path = Path(trainer.log_dir) / "texts.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            for text in texts:
                f.write(json.dumps({"name": name, "step": step, **context, "text": text}) + "\n")
