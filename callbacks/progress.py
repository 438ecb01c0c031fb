"""Progress display: a training bar that carries the latest eval headline, and a bar for long evals.

`SFTLabProgressBar` is Lightning's `TQDMProgressBar` plus the newest `eval/<group>/<headline>` values
(ID/OOD accuracy, general score, safety ASR) read from `trainer.callback_metrics`, where GenerationEval
puts them, with the step they were measured at (`eval/step`: with asynchronous evals it lags the training
step); it knows nothing of GenerationEval itself. An asynchronous eval's `EvalProgress` runs on the eval
thread, next to the training bar. `EvalProgress` is the `progress(done, total)` hook
that `sftlab.eval.evaluate.evaluate` calls as it scores prompts.

On a terminal both draw tqdm bars. When stdout is not a TTY (CI logs, `nohup`, a file) bars would print
one carriage-return-laden line per refresh, so both switch to plain lines instead: the training bar prints
one line every `log_every_n_steps` optimizer steps, the eval hook one line per task per eval.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar

from sftlab.metric_names import EVAL_STEP  # the step the latest eval metrics belong to

# Headline of each eval group, in display order (same choice as sftlab.eval.evaluate.GROUP_HEADLINE).
HEADLINES = ("eval/id/accuracy", "eval/ood/accuracy", "eval/general/score", "eval/safety/asr")


def stdout_is_tty() -> bool:
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty and isatty())


def eval_headlines(metrics: dict[str, Any]) -> dict[str, float]:
    """The group headlines present in `metrics`, keyed without the `eval/` prefix (`ood/accuracy`)."""
    out = {}
    for key in HEADLINES:
        if key in metrics:
            out[key.removeprefix("eval/")] = float(metrics[key])
    return out


def _format(values: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in values.items())


class SFTLabProgressBar(TQDMProgressBar):
    """Lightning's tqdm bar plus the latest eval headline; plain log lines when stdout is not a TTY.

    Args:
        refresh_rate: update the bar every this many batches (Lightning's `refresh_rate`).
        leave: keep the finished bar of each epoch on screen.
        log_every_n_steps: without a TTY, print one line every this many optimizer steps (and at the
            last step).
        tty: force the bar (True) or the plain lines (False); None detects `sys.stdout.isatty()`.
    """

    def __init__(
        self,
        refresh_rate: int = 1,
        leave: bool = False,
        log_every_n_steps: int = 10,
        tty: bool | None = None,
    ) -> None:
        if log_every_n_steps < 1:
            raise ValueError(f"log_every_n_steps must be >= 1, got log_every_n_steps={log_every_n_steps}")
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self.log_every_n_steps = log_every_n_steps
        self.tty = stdout_is_tty() if tty is None else tty
        self._last_printed_step = -1
        self.lines: list[str] = []  # the plain lines printed so far (kept for tests and callers)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if not self.tty:
            self.disable()

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, int | str | float]:
        items = super().get_metrics(trainer, pl_module)
        headline = eval_headlines(trainer.callback_metrics)
        items.update({k: f"{v:.3f}" for k, v in headline.items()})
        if headline and EVAL_STEP in trainer.callback_metrics:
            items["eval_step"] = int(trainer.callback_metrics[EVAL_STEP])
        return items

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        if self.tty:
            super().on_train_batch_end(trainer, pl_module, *args)
            return
        step = trainer.global_step
        last = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        due = step % self.log_every_n_steps == 0 or step == last
        if trainer.is_global_zero and due and step != self._last_printed_step:
            self._last_printed_step = step
            self._print(trainer, step, last)

    def _print(self, trainer: pl.Trainer, step: int, last: int | None) -> None:
        metrics = trainer.callback_metrics
        parts = [f"step {step}" + (f"/{last}" if last else "")]
        if "train/loss" in metrics:
            parts.append(f"train/loss={float(metrics['train/loss']):.4f}")
        headline = eval_headlines(metrics)
        if headline:
            at = f" (step {int(metrics[EVAL_STEP])})" if EVAL_STEP in metrics else ""
            parts.append(f"latest eval{at}: " + _format(headline))
        line = " | ".join(parts)
        self.lines.append(line)
        print(line, flush=True)


class EvalProgress:
    """`progress(done, total)` hook for one task's eval: a tqdm bar on a TTY, else one line at the end.

    Args:
        task: the task's name (bar description and line prefix).
        step: the optimizer step being evaluated.
        tty: as for SFTLabProgressBar; None detects `sys.stdout.isatty()`.
        echo: where the plain line goes (default `print`).
    """

    def __init__(
        self, task: str, step: int, tty: bool | None = None, echo: Callable[[str], None] | None = None
    ) -> None:
        self.task = task
        self.step = step
        self.tty = stdout_is_tty() if tty is None else tty
        self.echo = echo or (lambda line: print(line, flush=True))
        self._bar: Any = None
        self._started = time.perf_counter()

    def __call__(self, done: int, total: int) -> None:
        if self.tty:
            if self._bar is None:
                from tqdm import tqdm

                # stdout, like Lightning's bars (and the TTY check above).
                self._bar = tqdm(
                    total=total,
                    desc=f"eval {self.task} @ step {self.step}",
                    unit="prompt",
                    leave=False,
                    file=sys.stdout,
                )
            self._bar.update(done - self._bar.n)
            if done >= total:
                self._bar.close()
        elif done >= total:
            seconds = time.perf_counter() - self._started
            self.echo(f"eval step {self.step} {self.task}: {done}/{total} prompts scored in {seconds:.1f} s")
