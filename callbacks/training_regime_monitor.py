"""TrainingRegimeMonitor: label the training regime live from the eval metrics, like EarlyStopping reads a loss.

After each eval it appends an `EvalPoint` (ID/OOD accuracy, mean response length, sample counts) read from
`trainer.callback_metrics`, calls the pure classifier `sftlab.training_regime.classify`, and logs
`regime/label` and `regime/length_stage` (numeric codes, for plotting), `regime/best_step`, and the label
with its reason as text (`regime/reason`). It can stop training when the classifier says over-fitting and
keep a copy of the best model. The rules live in `sftlab.training_regime`; this callback decides *when*
and logs. It reads no other callback's attributes: evals are seen through `trainer.callback_metrics` only.

How an eval is detected: GenerationEval writes fresh metric objects into `trainer.callback_metrics` after
each eval. The monitor keeps references to the objects it last read; a watched key holding a different
object means a new eval, at `trainer.global_step`. It checks at every hook where an eval may just have
finished (train start, batch start and end, train end, fit end, checkpoint save), so it works in either
callback order: after GenerationEval in the callbacks list (recommended: the label is logged in the same
hook as the eval) or before it (the eval is picked up at the next hook, before any optimizer step, so the
step is still right; an eval written just before a checkpoint is saved is picked up in
`on_save_checkpoint` and goes into that checkpoint).

The step of an eval is `eval/step` in `trainer.callback_metrics` when the evaluator wrote it with the eval
(GenerationEval does), else `trainer.global_step`. With `GenerationEval(asynchronous=True)` an eval's
metrics arrive some optimizer steps after the step it scored (its `eval/lag_steps`): the point, label and
logged metrics still carry the eval's own step, in step order, but they are known only then, so
`early_stop_on_overfitting` stops training that many steps later, and `save_best_to` cannot save the best
eval's weights once training has moved past its step (it warns and saves nothing; a final eval arriving
at the last step is still saved). At fit end such an eval may arrive in `on_fit_end` or `teardown`, which
this callback also checks.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import lightning.pytorch as pl
import torch

from sftlab.callbacks.text_log import log_texts
from sftlab.metric_names import EVAL_STEP, REGIME, metric
from sftlab.training_regime import (
    LENGTH_STAGE_CODES,
    TRAINING_REGIME_CODES,
    EvalPoint,
    RegimeThresholds,
    RegimeVerdict,
    classify,
)

log = logging.getLogger(__name__)

LABEL_METRIC = metric(REGIME, "label")
LENGTH_STAGE_METRIC = metric(REGIME, "length_stage")
BEST_STEP_METRIC = metric(REGIME, "best_step")
REASON_TEXT = metric(REGIME, "reason")
EVAL_STEP_METRIC = EVAL_STEP  # written by the evaluator with each eval: the step whose weights it scored

_TASK_KEY = re.compile(r"^eval/([^/]+)/(response_tokens_mean|num_samples)$")


class TrainingRegimeMonitor(pl.Callback):
    """Classify the training regime (under-fitting / optimal / over-fitting) and length stage after every eval.

    Put it after `GenerationEval` in the callbacks list so each label is logged with its eval; before it
    works too (see the module docstring).

    Args:
        id_metric: in-domain accuracy key (a share in [0, 1]).
        ood_metric: out-of-domain accuracy key; the primary signal when present.
        length_metric: mean response length key. None: the mean of every `eval/<task>/response_tokens_mean`
            written by the eval (only those of `id_tasks` + `ood_tasks` when either is given).
        id_tasks: names of the tasks in the ID group; their `eval/<task>/num_samples` are summed for the ID
            sample count (and they select the default length keys).
        ood_tasks: the same for the OOD group.
        id_num_samples: scored samples behind the ID accuracy: a fixed int, a metric key, or None (the sum
            over `id_tasks`; with no `id_tasks`, the smallest `eval/<task>/num_samples` present: that
            overstates the noise of a multi-task group, so the classifier errs towards "no change").
        ood_num_samples: the same for OOD.
        z: standard errors a difference must exceed (`RegimeThresholds.z`).
        patience: consecutive evals below the peak before over-fitting is declared.
        length_spike_ratio: peak length / baseline length that counts as a spike.
        length_stable_tolerance: relative length change between evals that still counts as stable.
        early_stop_on_overfitting: set `trainer.should_stop` when the classifier recommends "stop". Off by
            default: the paper finds that most runs which look bad are under-trained, not over-fit.
        track_best: log `regime/best_step` (the classifier's best checkpoint so far).
        save_best_to: when the current eval is the best so far (past step 0, whose model is the base
            checkpoint itself), save the model weights there with `trainer.save_checkpoint(...,
            weights_only=True)`, overwriting the previous best. None: save nothing.
    """

    def __init__(
        self,
        id_metric: str = "eval/id/accuracy",
        ood_metric: str = "eval/ood/accuracy",
        length_metric: str | None = None,
        id_tasks: Sequence[str] = (),
        ood_tasks: Sequence[str] = (),
        id_num_samples: int | str | None = None,
        ood_num_samples: int | str | None = None,
        z: float = RegimeThresholds.z,
        patience: int = RegimeThresholds.patience,
        length_spike_ratio: float = RegimeThresholds.length_spike_ratio,
        length_stable_tolerance: float = RegimeThresholds.length_stable_tolerance,
        early_stop_on_overfitting: bool = False,
        track_best: bool = True,
        save_best_to: str | None = None,
    ) -> None:
        problems = []
        for name, value in (("id_num_samples", id_num_samples), ("ood_num_samples", ood_num_samples)):
            if isinstance(value, bool) or (isinstance(value, int) and value < 1):
                problems.append(f"{name} must be an int >= 1, a metric key or None, got {name}={value!r}")
        if not id_metric or not ood_metric:
            problems.append(
                f"id_metric and ood_metric must be metric keys, got {id_metric!r}, {ood_metric!r}"
            )
        try:
            self.thresholds = RegimeThresholds(
                z=z,
                patience=patience,
                length_spike_ratio=length_spike_ratio,
                length_stable_tolerance=length_stable_tolerance,
            )
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise ValueError("invalid TrainingRegimeMonitor arguments: " + "; ".join(problems))
        self.id_metric = id_metric
        self.ood_metric = ood_metric
        self.length_metric = length_metric
        self.id_tasks = list(id_tasks)
        self.ood_tasks = list(ood_tasks)
        self.num_samples_source = {"id": id_num_samples, "ood": ood_num_samples}
        self.early_stop_on_overfitting = early_stop_on_overfitting
        self.track_best = track_best
        self.save_best_to = save_best_to
        # Persistent state (state_dict): the eval history and what has been done with it.
        self.history: list[EvalPoint] = []
        self.last_step = -1
        self.saved_best_step: int | None = None
        self.verdict: RegimeVerdict | None = None
        # Transient: the metric objects read at the last eval (a new object = a new eval).
        self._seen: dict[str, Any] = {}
        self._warned_counts = False

    @property
    def state_key(self) -> str:
        return self._generate_state_key(id_metric=self.id_metric, ood_metric=self.ood_metric)

    # -- when ------------------------------------------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.check(trainer)  # an eval written after this callback's previous on_train_batch_end

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        self.check(trainer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.check(trainer)  # the final eval when this callback runs before the evaluator's on_train_end

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage == "fit":
            self.check(trainer)  # an asynchronous evaluator's final eval, logged in its on_fit_end

    def on_save_checkpoint(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        # state_dict() was taken before this hook; refresh it if an eval arrived since the last check.
        if self.check(trainer) and self.state_key in checkpoint.get("callbacks", {}):
            checkpoint["callbacks"][self.state_key] = self.state_dict()

    # -- what ------------------------------------------------------------------------------------------
    def check(self, trainer: pl.Trainer) -> bool:
        """Record, classify and log an eval written since the last check; True when there was one."""
        metrics = trainer.callback_metrics
        watched = self._watched(metrics) | {EVAL_STEP_METRIC}
        fresh = {k: v for k, v in metrics.items() if k in watched and v is not self._seen.get(k)}
        if not fresh:
            return False
        eval_step = _number(fresh.get(EVAL_STEP_METRIC))
        step = int(eval_step) if eval_step is not None else trainer.global_step
        if step <= self.last_step:
            # Two evaluators at one step, or a replayed write: the history must strictly increase.
            log.debug("regime monitor: metrics changed at step %d, already recorded; ignored", step)
            self._seen.update(fresh)
            return False
        point = self._point(step, metrics, fresh)
        self._seen.update(fresh)
        if point is None:
            return False
        self.history.append(point)
        self.last_step = step
        self.verdict = classify(self.history, self.thresholds)
        self._act(trainer, self.verdict)
        return True

    def _watched(self, metrics: dict[str, Any]) -> set[str]:
        return {self.id_metric, self.ood_metric, *self._length_keys(metrics)}

    def _length_keys(self, metrics: dict[str, Any]) -> list[str]:
        if self.length_metric is not None:
            return [self.length_metric]
        tasks = set(self.id_tasks) | set(self.ood_tasks)
        keys = []
        for key in metrics:
            match = _TASK_KEY.match(key)
            if match and match.group(2) == "response_tokens_mean" and (not tasks or match.group(1) in tasks):
                keys.append(key)
        return sorted(keys)

    def _point(self, step: int, metrics: dict[str, Any], fresh: dict[str, Any]) -> EvalPoint | None:
        accuracy = {"id": _number(fresh.get(self.id_metric)), "ood": _number(fresh.get(self.ood_metric))}
        lengths = [v for k in self._length_keys(metrics) if (v := _number(fresh.get(k))) is not None]
        length = sum(lengths) / len(lengths) if lengths else None
        if accuracy["id"] is None and accuracy["ood"] is None and length is None:
            return None
        counts = {g: self._num_samples(g, metrics) for g in ("id", "ood") if accuracy[g] is not None}
        missing = [g for g, n in counts.items() if n is None]
        if missing:
            log.warning(
                "regime monitor: no sample count for %s at step %d (set id_num_samples/ood_num_samples or "
                "id_tasks/ood_tasks); that accuracy is left out of this point",
                "/".join(missing),
                step,
            )
            for g in missing:
                accuracy[g] = None
                counts.pop(g)
        return EvalPoint(
            step=step,
            id_accuracy=accuracy["id"],
            ood_accuracy=accuracy["ood"],
            response_tokens_mean=length,
            num_samples={g: int(n) for g, n in counts.items() if n is not None},
        )

    def _num_samples(self, group: str, metrics: dict[str, Any]) -> int | None:
        source = self.num_samples_source[group]
        if isinstance(source, int):
            return source
        if isinstance(source, str):
            value = _number(metrics.get(source))
            return int(value) if value is not None and value >= 1 else None
        per_task = {}
        for key, value in metrics.items():
            match = _TASK_KEY.match(key)
            if match and match.group(2) == "num_samples" and (n := _number(value)) is not None and n >= 1:
                per_task[match.group(1)] = int(n)
        tasks = self.id_tasks if group == "id" else self.ood_tasks
        if tasks:
            found = [per_task[t] for t in tasks if t in per_task]
            return sum(found) if found else None
        if not per_task:
            return None
        if len(per_task) > 1 and not self._warned_counts:
            self._warned_counts = True
            log.warning(
                "regime monitor: %d tasks report num_samples and id_tasks/ood_tasks are not set; using the "
                "smallest count (%d) for each group, which overstates eval noise. Set id_tasks/ood_tasks.",
                len(per_task),
                min(per_task.values()),
            )
        return min(per_task.values())

    def _act(self, trainer: pl.Trainer, verdict: RegimeVerdict) -> None:
        values = {
            LABEL_METRIC: float(TRAINING_REGIME_CODES[verdict.training_regime]),
            LENGTH_STAGE_METRIC: float(LENGTH_STAGE_CODES[verdict.length_stage]),
        }
        if self.track_best:
            values[BEST_STEP_METRIC] = float(verdict.best_step)
        for key, value in values.items():
            trainer.callback_metrics[key] = torch.tensor(value)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(values, step=verdict.step)
        text = (
            f"step {verdict.step}: {verdict.training_regime} ({verdict.length_stage}), "
            f"{verdict.recommendation}, best step {verdict.best_step}: {verdict.reason}"
        )
        context = {
            "training_regime": verdict.training_regime,
            "length_stage": verdict.length_stage,
            "recommendation": verdict.recommendation,
        }
        log_texts(trainer, REASON_TEXT, [text], verdict.step, context)
        log.info("regime monitor: %s", text)
        if self.save_best_to and verdict.step > 0 and verdict.best_step == verdict.step:
            if verdict.step != trainer.global_step:
                log.warning(
                    "regime monitor: the eval of step %d is the best so far, but it arrived at step %d "
                    "(asynchronous eval) and the model has trained on since; not saved to %s. Use "
                    "GenerationEval(asynchronous=False) with save_best_to, or keep ModelCheckpoint files of "
                    "the eval steps.",
                    verdict.step,
                    trainer.global_step,
                    self.save_best_to,
                )
            else:
                # All ranks call it (save_checkpoint is collective); the strategy writes on rank 0.
                trainer.save_checkpoint(self.save_best_to, weights_only=True)
                self.saved_best_step = verdict.step
        if self.early_stop_on_overfitting and verdict.recommendation == "stop":
            trainer.should_stop = True

    # -- resume ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "history": [asdict(p) for p in self.history],
            "last_step": self.last_step,
            "saved_best_step": self.saved_best_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = [EvalPoint(**p) for p in state_dict.get("history", [])]
        self.last_step = int(state_dict.get("last_step", self.history[-1].step if self.history else -1))
        self.saved_best_step = state_dict.get("saved_best_step")
        self.verdict = classify(self.history, self.thresholds) if self.history else None
        self._seen = {}


def _number(value: Any) -> float | None:
    """A finite float from a tensor or number; None for missing, NaN or non-numeric values."""
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            return None
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
