"""GenerationEval: evaluate the model being trained by generation, at step 0, every N steps and at the end.

The callback decides *when*; the evaluation core (`sftlab.eval.evaluate`) decides *how*. Before each eval
the current weights are exported (full state dict, rank 0) and loaded into a persistent backend engine in
place, so the engine starts once per run. A backend crash or time-out is logged (`eval/errors`), training
goes on, and the next eval restarts the engine; metrics already logged stay logged. Eval history is saved
with checkpoints so a resumed run neither repeats nor loses evals.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from sftlab.callbacks.text_log import log_texts, run_dir
from sftlab.eval.backends.base import GenerationBackend
from sftlab.eval.evaluate import TaskResult, evaluate, flatten_metrics
from sftlab.eval.export import export_state_dict
from sftlab.eval.task import EvalTask

log = logging.getLogger(__name__)


class GenerationEval(pl.Callback):
    """Generation-based evaluation during training.

    Args:
        tasks: evaluation tasks (class_path each), e.g. `sftlab.eval.tasks.countdown.CountdownTask`.
        backend: generation backend; default `VLLMBackend()`. `HFBackend` is the fallback.
        every_n_steps: evaluate every this many optimizer steps (0 = never by interval).
        eval_steps: explicit optimizer steps to evaluate at (e.g. the paper's 10, 20, 40, ..., 640);
            combined with `every_n_steps`.
        at_start: evaluate the untouched model at step 0 (the baseline every curve is read against).
        at_end: evaluate after the last step if that step was not evaluated already.
        num_text_samples: generations per task logged as text at each eval.
        export_dtype: dtype of exported weights. "auto": the backend's engine dtype when it states one
            (no cast on reload), else the source checkpoint's `dtype`; "keep" writes the training dtype.
        on_error: "log" (record `eval/errors`, keep training) or "raise".
    """

    def __init__(
        self,
        tasks: Sequence[EvalTask],
        backend: GenerationBackend | None = None,
        every_n_steps: int = 50,
        eval_steps: Sequence[int] = (),
        at_start: bool = True,
        at_end: bool = True,
        num_text_samples: int = 3,
        export_dtype: Literal["auto", "keep", "float32", "bfloat16", "float16"] = "auto",
        on_error: Literal["log", "raise"] = "log",
    ) -> None:
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got every_n_steps={every_n_steps}")
        if not tasks:
            raise ValueError("GenerationEval needs at least one task")
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"task names must be unique, got {names}")
        if backend is None:
            from sftlab.eval.backends.vllm_backend import VLLMBackend

            backend = VLLMBackend()
        self.tasks = list(tasks)
        self.backend = backend
        self.every_n_steps = every_n_steps
        self.eval_steps = sorted(set(int(s) for s in eval_steps))
        self.at_start = at_start
        self.at_end = at_end
        self.num_text_samples = num_text_samples
        self.export_dtype = export_dtype
        self.on_error = on_error
        self.history: list[dict[str, Any]] = []  # {"step": int, "metrics": {key: value}}
        self.errors = 0
        self._tokenizer: Any = None
        self._last_checked_step = -1

    # -- when ------------------------------------------------------------------------------------------
    def evaluated_steps(self) -> set[int]:
        return {h["step"] for h in self.history}

    def due(self, step: int) -> bool:
        if step in self.evaluated_steps():
            return False
        if step == 0:
            return self.at_start
        return (self.every_n_steps > 0 and step % self.every_n_steps == 0) or step in self.eval_steps

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._last_checked_step = trainer.global_step
        if self.due(trainer.global_step) and trainer.global_step == 0:
            self.run(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step == self._last_checked_step:
            return  # still accumulating: no optimizer step since the last check
        self._last_checked_step = step
        if self.due(step):
            self.run(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.at_end and trainer.global_step not in self.evaluated_steps():
            self.run(trainer, pl_module)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.backend.close()

    # -- how -------------------------------------------------------------------------------------------
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Export weights, generate and score every task, log. Returns the logged metrics."""
        step = trainer.global_step
        metrics: dict[str, float] = {}
        if trainer.is_global_zero:
            metrics = self._evaluate_rank_zero(trainer, pl_module, step)
        metrics = trainer.strategy.broadcast(metrics, src=0)
        for key, value in metrics.items():
            trainer.callback_metrics[key] = torch.tensor(value)
        if metrics:
            self.history.append({"step": step, "metrics": metrics})
        return metrics

    def _evaluate_rank_zero(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, step: int
    ) -> dict[str, float]:
        started = time.perf_counter()
        was_training = pl_module.training
        pl_module.eval()
        try:
            folder = self._export(trainer, pl_module)
            self.backend.start(pl_module.model_path)
            self.backend.update_weights(str(folder))
            tokenizer = self._get_tokenizer(pl_module.model_path)
            results = [evaluate(task, self.backend, tokenizer) for task in self.tasks]
        except Exception:
            if self.on_error == "raise":
                raise
            self.errors += 1
            log.exception(
                "eval at step %d failed; training continues and the next eval restarts the backend", step
            )
            self.backend.close()
            metrics = {"eval/errors": float(self.errors)}
            self._log(trainer, metrics, step)
            return {}
        finally:
            pl_module.train(was_training)
        metrics = flatten_metrics(results)
        metrics["eval/time_s"] = time.perf_counter() - started
        metrics["eval/errors"] = float(self.errors)
        self._log(trainer, metrics, step)
        self._write_records(trainer, results, step)
        return metrics

    def _export(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> Path:
        model = pl_module.model
        out = run_dir(trainer) / "eval_weights"
        dtype = self._export_torch_dtype(pl_module)
        tied = bool(getattr(model.config, "tie_word_embeddings", False))
        return export_state_dict(
            model.state_dict(), out, source_folder=pl_module.model_path, tie_word_embeddings=tied, dtype=dtype
        )

    def _export_torch_dtype(self, pl_module: pl.LightningModule) -> torch.dtype | None:
        name = self.export_dtype
        if name == "auto":
            resolve = getattr(self.backend, "resolved_dtype", None)
            name = resolve() if resolve is not None else "auto"
            if name == "auto":
                name = str(getattr(pl_module.model.config, "dtype", None) or "keep").replace("torch.", "")
        if name == "keep":
            return None
        dtype = getattr(torch, name, None)
        return dtype if isinstance(dtype, torch.dtype) else None

    def _get_tokenizer(self, model_path: str) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(model_path)
        return self._tokenizer

    def _log(self, trainer: pl.Trainer, metrics: dict[str, float], step: int) -> None:
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    def _write_records(self, trainer: pl.Trainer, results: list[TaskResult], step: int) -> None:
        root = run_dir(trainer) / "eval" / f"step_{step:06d}"
        root.mkdir(parents=True, exist_ok=True)
        for result in results:
            with (root / f"{result.task}.jsonl").open("w") as f:
                for record in result.records:
                    f.write(json.dumps(record, default=str) + "\n")
            samples = [
                f"[{r['id']}] correct={r['correct']} extracted={r['extracted']!r}\n{r['response']}"
                for r in result.records[: self.num_text_samples]
            ]
            log_texts(
                trainer, f"eval/{result.task}/samples", samples, step, {"task": result.task, "step": step}
            )

    # -- resume ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "errors": self.errors}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.errors = int(state_dict.get("errors", 0))
