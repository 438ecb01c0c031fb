"""TrainingRegimeMonitor on a real Trainer: labels from paper-shaped eval curves, callback order, early stop,
best-model copy, and checkpoint -> resume continuing the history.

A scripted eval callback writes metrics into `trainer.callback_metrics` at given steps exactly the way
GenerationEval does (fresh tensors, in the same hooks), so these tests need no model generation.
"""

from __future__ import annotations

import csv
import json
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger

from sftlab.callbacks import TrainingRegimeMonitor
from sftlab.training_regime import EvalPoint, classify_history

STEPS = [0, 5, 10, 15, 20, 25, 30, 35, 40]
# The paper's typical run (arXiv 2604.06628): OOD dips below baseline then recovers; length spikes then
# settles; no over-fitting.
PAPER_RUN = {
    "id": [0.20, 0.35, 0.45, 0.55, 0.60, 0.62, 0.62, 0.62, 0.62],
    "ood": [0.30, 0.25, 0.24, 0.33, 0.40, 0.45, 0.46, 0.46, 0.46],
    "length": [300, 900, 1200, 1000, 800, 760, 750, 755, 752],
}
# An aggressive schedule: both accuracies fall from their step-20 peak and the length rises again.
OVERFIT_RUN = {
    "id": [0.20, 0.40, 0.55, 0.60, 0.62, 0.52, 0.48, 0.45, 0.43],
    "ood": [0.30, 0.35, 0.45, 0.50, 0.52, 0.44, 0.40, 0.38, 0.36],
    "length": [300, 900, 700, 650, 640, 700, 800, 900, 950],
}


def script(run: dict[str, list[float]]) -> dict[int, dict[str, float]]:
    """GenerationEval-shaped metrics: per task (math = ID, gpqa = OOD, 1000 samples each) plus groups."""
    out = {}
    for i, step in enumerate(STEPS):
        out[step] = {
            "eval/math/accuracy": run["id"][i],
            "eval/math/num_samples": 1000.0,
            "eval/math/response_tokens_mean": run["length"][i] * 0.9,
            "eval/gpqa/accuracy": run["ood"][i],
            "eval/gpqa/num_samples": 1000.0,
            "eval/gpqa/response_tokens_mean": run["length"][i] * 1.1,
            "eval/id/accuracy": run["id"][i],
            "eval/ood/accuracy": run["ood"][i],
            "eval/time_s": 1.0,
        }
    return out


def points(run: dict[str, list[float]]) -> list[EvalPoint]:
    counts = {"id": 1000, "ood": 1000}
    return [EvalPoint(s, run["id"][i], run["ood"][i], run["length"][i], counts) for i, s in enumerate(STEPS)]


def assert_history(history: list[EvalPoint], run: dict[str, list[float]]) -> None:
    """The recorded points equal the script's, up to float32 (GenerationEval writes float32 tensors)."""
    expected = points(run)
    assert [(p.step, p.num_samples) for p in history] == [(p.step, p.num_samples) for p in expected]
    for name in ("id_accuracy", "ood_accuracy", "response_tokens_mean"):
        got, want = [getattr(p, name) for p in history], [getattr(p, name) for p in expected]
        assert got == pytest.approx(want, rel=1e-6), name


class ScriptedEval(pl.Callback):
    """Writes scripted metrics at given optimizer steps, in GenerationEval's hooks; resumable like it."""

    def __init__(self, metrics: dict[int, dict[str, float]], at_end: dict[str, float] | None = None) -> None:
        self.metrics = metrics
        self.at_end = at_end  # written in on_train_end at a step off the schedule, like `at_end=True`
        self.done: list[int] = []

    def _write(self, trainer: pl.Trainer, metrics: dict[int, dict[str, float]] | None = None) -> None:
        step, metrics = trainer.global_step, metrics or self.metrics
        if step in metrics and step not in self.done:
            self.done.append(step)
            for key, value in metrics[step].items():
                trainer.callback_metrics[key] = torch.tensor(value)

    def on_train_start(self, trainer, pl_module) -> None:
        if trainer.global_step == 0:
            self._write(trainer)

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self._write(trainer)

    def on_train_end(self, trainer, pl_module) -> None:
        self._write(trainer, {trainer.global_step: self.at_end} if self.at_end else None)

    def state_dict(self) -> dict:
        return {"done": self.done}

    def load_state_dict(self, state_dict: dict) -> None:
        self.done = list(state_dict["done"])


def fit(tmp_path, callbacks, max_steps: int = 40, ckpt_path: str | None = None) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="", version=""),
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=tmp_path,
    )
    trainer.fit(BoringModel(), ckpt_path=ckpt_path)
    return trainer


def logged_labels(tmp_path) -> dict[int, tuple[int, int, int]]:
    """(label, length_stage, best_step) per step from the CSV logger's metrics file."""
    with (tmp_path / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("regime/label")]
    return {
        int(r["step"]): (
            int(float(r["regime/label"])),
            int(float(r["regime/length_stage"])),
            int(float(r["regime/best_step"])),
        )
        for r in rows
    }


def codes(run: dict[str, list[float]]) -> dict[int, tuple[int, int, int]]:
    from sftlab.training_regime import LENGTH_STAGE_CODES, TRAINING_REGIME_CODES

    return {
        v.step: (TRAINING_REGIME_CODES[v.training_regime], LENGTH_STAGE_CODES[v.length_stage], v.best_step)
        for v in classify_history(points(run))
    }


@pytest.mark.parametrize("monitor_first", [False, True], ids=["after-eval", "before-eval"])
def test_labels_follow_the_paper_shaped_curves(tmp_path, monitor_first: bool) -> None:
    monitor = TrainingRegimeMonitor(id_tasks=["math"], ood_tasks=["gpqa"])
    evaluator = ScriptedEval(script(PAPER_RUN))
    trainer = fit(tmp_path, [monitor, evaluator] if monitor_first else [evaluator, monitor])
    # Every eval recorded once, at its own step, in either callback order.
    assert_history(monitor.history, PAPER_RUN)
    labels = logged_labels(tmp_path)
    assert labels == codes(PAPER_RUN)
    assert labels[5][:2] == (0, 0)  # under-fitting in the dip, length spiking (surface imitation)
    assert labels[25][:2] == (0, 1)  # still improving, length settled (genuine reasoning)
    assert labels[40] == (1, 1, 30)  # optimal, genuine reasoning, best step 30
    assert monitor.verdict is not None and monitor.verdict.training_regime == "optimal"
    assert trainer.callback_metrics["regime/label"].item() == 1.0
    assert trainer.callback_metrics["regime/best_step"].item() == 30.0
    texts = [json.loads(line) for line in (tmp_path / "texts.jsonl").read_text().splitlines()]
    reasons = [t for t in texts if t["name"] == "regime/reason"]
    assert [t["step"] for t in reasons] == STEPS
    assert "in the dip" in reasons[1]["text"] and reasons[1]["training_regime"] == "underfitting"
    assert trainer.global_step == 40  # no early stop by default


@pytest.mark.parametrize("monitor_first", [False, True], ids=["after-eval", "before-eval"])
def test_the_final_eval_at_train_end_is_recorded(tmp_path, monitor_first: bool) -> None:
    metrics = script(PAPER_RUN)
    evaluator = ScriptedEval({s: m for s, m in metrics.items() if s < 40}, at_end=metrics[40])
    monitor = TrainingRegimeMonitor(id_tasks=["math"], ood_tasks=["gpqa"])
    fit(tmp_path, [monitor, evaluator] if monitor_first else [evaluator, monitor], max_steps=37)
    assert [p.step for p in monitor.history] == [*STEPS[:-1], 37]
    assert logged_labels(tmp_path)[37] == (1, 1, 30)


def test_early_stop_on_overfitting(tmp_path) -> None:
    monitor = TrainingRegimeMonitor(id_tasks=["math"], ood_tasks=["gpqa"], early_stop_on_overfitting=True)
    trainer = fit(tmp_path, [ScriptedEval(script(OVERFIT_RUN)), monitor])
    assert trainer.global_step == 30  # patience 2: falls at 25 and 30 -> stop after step 30
    assert monitor.verdict is not None and monitor.verdict.recommendation == "stop"
    assert monitor.verdict.best_step == 20
    assert logged_labels(tmp_path)[30] == (2, 1, 20)


def test_overfitting_is_only_labelled_without_early_stop(tmp_path) -> None:
    monitor = TrainingRegimeMonitor(id_tasks=["math"], ood_tasks=["gpqa"])
    trainer = fit(tmp_path, [ScriptedEval(script(OVERFIT_RUN)), monitor])
    assert trainer.global_step == 40 and monitor.verdict.training_regime == "overfitting"


def test_best_model_is_saved_when_ood_improves(tmp_path) -> None:
    best = tmp_path / "best.ckpt"
    monitor = TrainingRegimeMonitor(id_tasks=["math"], ood_tasks=["gpqa"], save_best_to=str(best))
    fit(tmp_path, [ScriptedEval(script(PAPER_RUN)), monitor])
    assert monitor.saved_best_step == 30  # the last eval that was the best so far
    checkpoint = torch.load(best, weights_only=False)
    assert checkpoint["global_step"] == 30
    assert "state_dict" in checkpoint and "optimizer_states" not in checkpoint  # weights only


@pytest.mark.parametrize("monitor_first", [False, True], ids=["after-eval", "before-eval"])
def test_checkpoint_resume_continues_the_history(tmp_path, monitor_first: bool) -> None:
    def callbacks(monitor: TrainingRegimeMonitor) -> list[pl.Callback]:
        evaluator = ScriptedEval(script(PAPER_RUN))
        checkpoint = ModelCheckpoint(
            dirpath=tmp_path / "ckpt", filename="{step}", every_n_train_steps=10, save_top_k=-1
        )
        return [monitor, evaluator, checkpoint] if monitor_first else [evaluator, monitor, checkpoint]

    first = TrainingRegimeMonitor(id_tasks=["math"], ood_tasks=["gpqa"])
    fit(tmp_path / "a", callbacks(first), max_steps=20)
    assert [p.step for p in first.history] == [0, 5, 10, 15, 20]
    # The checkpoint saved at step 20 already holds the step-20 eval, in either callback order.
    saved = torch.load(tmp_path / "ckpt" / "step=20.ckpt", weights_only=False)
    assert saved["callbacks"][first.state_key]["last_step"] == 20

    resumed = TrainingRegimeMonitor(id_tasks=["math"], ood_tasks=["gpqa"])
    fit(tmp_path / "b", callbacks(resumed), max_steps=40, ckpt_path=str(tmp_path / "ckpt" / "step=20.ckpt"))
    assert_history(resumed.history, PAPER_RUN)
    # The resumed run labels its evals as the uninterrupted run would have.
    assert logged_labels(tmp_path / "b") == {s: c for s, c in codes(PAPER_RUN).items() if s > 20}


def fake_trainer(metrics: dict[str, float], step: int, root) -> SimpleNamespace:
    """Just the trainer state the monitor reads, for fast checks of its bookkeeping."""
    return SimpleNamespace(
        default_root_dir=str(root),
        global_step=step,
        callback_metrics={k: torch.tensor(v) for k, v in metrics.items()},
        loggers=[],
        is_global_zero=True,
        log_dir=None,
        should_stop=False,
    )


def test_sample_counts_from_tasks_metric_names_or_fixed_ints(tmp_path) -> None:
    metrics = {
        "eval/id/accuracy": 0.5,
        "eval/ood/accuracy": 0.4,
        "eval/math500/num_samples": 1500.0,
        "eval/aime24/num_samples": 300.0,
        "eval/gpqa/num_samples": 594.0,
        "eval/hexphi/num_samples": 330.0,
        "eval/math500/response_tokens_mean": 1000.0,
        "eval/aime24/response_tokens_mean": 3000.0,
        "eval/hexphi/response_tokens_mean": 50.0,
    }
    by_task = TrainingRegimeMonitor(id_tasks=["math500", "aime24"], ood_tasks=["gpqa"])
    assert by_task.check(fake_trainer(metrics, 0, tmp_path))
    point = by_task.history[0]
    assert point.num_samples == {"id": 1800, "ood": 594}
    assert point.response_tokens_mean == pytest.approx(2000.0)  # hexphi is in neither group: left out

    fixed = TrainingRegimeMonitor(id_num_samples=99, ood_num_samples="eval/gpqa/num_samples")
    fixed.check(fake_trainer(metrics, 0, tmp_path))
    assert fixed.history[0].num_samples == {"id": 99, "ood": 594}
    # The brief's default length: the mean over every task present.
    assert fixed.history[0].response_tokens_mean == pytest.approx(4050.0 / 3)

    unknown = TrainingRegimeMonitor()  # conservative: the smallest count present
    unknown.check(fake_trainer(metrics, 0, tmp_path))
    assert unknown.history[0].num_samples == {"id": 300, "ood": 300}


def test_a_new_eval_is_a_new_metric_object_at_a_later_step(tmp_path) -> None:
    monitor = TrainingRegimeMonitor(id_num_samples=100, ood_num_samples=100)
    trainer = fake_trainer({"eval/id/accuracy": 0.5, "eval/ood/accuracy": 0.25}, 0, tmp_path)
    assert monitor.check(trainer)
    trainer.global_step = 3
    assert not monitor.check(trainer)  # same objects: no new eval
    trainer.callback_metrics["eval/ood/accuracy"] = torch.tensor(0.25)  # same value, new eval
    trainer.global_step = 5
    assert monitor.check(trainer)
    # Only metrics written by this eval are used: the ID accuracy is from the step-0 eval.
    assert monitor.history[-1] == EvalPoint(5, None, 0.25, None, {"ood": 100})
    trainer.callback_metrics["eval/ood/accuracy"] = torch.tensor(0.1)
    assert not monitor.check(trainer)  # a second write at an already-recorded step is ignored
    assert len(monitor.history) == 2


def test_state_dict_round_trip(tmp_path) -> None:
    monitor = TrainingRegimeMonitor(id_num_samples=100, ood_num_samples=100)
    trainer = fake_trainer({"eval/id/accuracy": 0.5, "eval/ood/accuracy": 0.4}, 0, tmp_path)
    monitor.check(trainer)
    restored = TrainingRegimeMonitor(id_num_samples=100, ood_num_samples=100)
    restored.load_state_dict(json.loads(json.dumps(monitor.state_dict())))  # plain JSON-able state
    assert restored.history == monitor.history and restored.last_step == 0
    assert restored.verdict == monitor.verdict


def test_bad_arguments_are_all_reported() -> None:
    with pytest.raises(ValueError) as err:
        TrainingRegimeMonitor(z=0, patience=0, id_num_samples=0)
    message = str(err.value)
    assert "z must be > 0, got z=0" in message and "patience" in message and "id_num_samples=0" in message


def test_reads_what_generation_eval_really_writes(tiny_model: str, tmp_path) -> None:
    """The real evaluator and the monitor wired together (monitor first, the order that needs the
    next-hook pickup): every GenerationEval eval becomes one point built from its metrics."""
    from sftlab.callbacks import GenerationEval
    from sftlab.data.countdown_regime import CountdownRegime
    from sftlab.data.datamodule import SFTDataModule
    from sftlab.eval.backends.hf_backend import HFBackend
    from sftlab.eval.tasks.countdown import CountdownTask
    from sftlab.module import SFTModule

    evaluator = GenerationEval(
        [CountdownTask(num_problems=3, num_numbers=(3,), max_tokens=8)], backend=HFBackend(), every_n_steps=2
    )
    monitor = TrainingRegimeMonitor(id_tasks=["countdown"])
    data = SFTDataModule(
        CountdownRegime(train_size=16, num_numbers=(3,), max_attempts=1),
        tokenizer=tiny_model,
        micro_batch_size=2,
        global_batch_size=4,
        max_length=512,
    )
    trainer = pl.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="", version=""),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[monitor, evaluator],
        default_root_dir=tmp_path,
    )
    trainer.fit(SFTModule(model_name=tiny_model, learning_rate=1e-3), datamodule=data)
    assert [h["step"] for h in evaluator.history] == [0, 2, 3]
    assert [p.step for p in monitor.history] == [0, 2, 3]
    for point, eval_row in zip(monitor.history, evaluator.history, strict=True):
        metrics = eval_row["metrics"]
        assert point.id_accuracy == pytest.approx(metrics["eval/id/accuracy"])
        assert point.ood_accuracy is None  # no OOD task configured
        assert point.response_tokens_mean == pytest.approx(metrics["eval/countdown/response_tokens_mean"])
        assert point.num_samples == {"id": 3}
    assert "regime/label" in trainer.callback_metrics
