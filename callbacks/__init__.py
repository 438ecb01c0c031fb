"""Lightning callbacks for sftlab, imported as `sftlab.callbacks` (the top-level folder `callbacks/`).

Each callback owns one concern and its metric namespace; they share facts only through public trainer
state (`trainer.callback_metrics`, `global_step`).
"""

from sftlab.callbacks.generation_eval import GenerationEval
from sftlab.callbacks.training_regime_monitor import TrainingRegimeMonitor

__all__ = ["GenerationEval", "TrainingRegimeMonitor"]
