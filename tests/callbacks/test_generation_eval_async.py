"""GenerationEval(asynchronous=True) on a real Trainer: training goes on while an eval runs, results land
on the eval's own step (CSV and Aim), the snapshot is that step's weights, wait / skip when busy, failures,
the final eval at fit end and after an exception, checkpoints and resume, and TrainingRegimeMonitor.

The mechanism is driven by `GatedBackend`, a backend whose weight loading blocks until the trainer reaches
a given step (a gate a synchronous eval could never open: `test_the_gate_blocks_a_synchronous_eval`
shows the same setup failing without `asynchronous`), and which records what it loaded. One test runs
the real HF backend end to end and compares it with the synchronous mode; a slow one runs two DDP ranks
(this file is then its own job program, as Lightning's launcher re-runs the script once per rank).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel
from lightning.pytorch.loggers import CSVLogger

from sftlab.callbacks import GenerationEval, TrainingRegimeMonitor
from sftlab.callbacks.progress import SFTLabProgressBar
from sftlab.data.countdown_regime import CountdownRegime
from sftlab.data.datamodule import SFTDataModule
from sftlab.eval.backends.hf_backend import HFBackend
from sftlab.eval.tasks.countdown import CountdownTask
from sftlab.eval.types import Generation
from sftlab.module import SFTModule

GATE_TIMEOUT_S = 120.0  # how long a gated eval waits for training before it fails


def digests(state: dict[str, torch.Tensor]) -> dict[str, str]:
    """A SHA-256 of every tensor's bytes: equal digests = bit-identical weights."""
    return {
        k: hashlib.sha256(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes()).hexdigest()
        for k, t in state.items()
    }


def step_of(folder: str) -> int:
    """The eval step from an asynchronous export folder (`eval_weights/step_000004`); 0 for the one folder
    every synchronous eval reuses."""
    name = Path(folder).name
    return int(name.removeprefix("step_")) if name.startswith("step_") else 0


class Progress(pl.Callback):
    """Training-side facts: the weights at every optimizer step, gates opened by reaching a step, and the
    evaluator's queue length after each of its hooks (it runs after the evaluator)."""

    def __init__(self, evaluator: GenerationEval | None = None) -> None:
        self.evaluator = evaluator
        self.weights: dict[int, dict[str, str]] = {}
        self.gates: dict[int, threading.Event] = {}
        self.queue_lengths: list[int] = []

    def gate(self, step: int) -> threading.Event:
        return self.gates.setdefault(step, threading.Event())

    def _at(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if step not in self.weights:
            self.weights[step] = digests(pl_module.model.state_dict())
        for reach, event in self.gates.items():
            if step >= reach:
                event.set()
        if self.evaluator is not None:
            self.queue_lengths.append(len(self.evaluator.pending_steps))

    def on_train_start(self, trainer, pl_module) -> None:
        self._at(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        self._at(trainer, pl_module)


class GatedBackend:
    """A GenerationBackend for timing control. `gates[s]`: loading the weights of eval step s waits for
    that Event (set by the trainer reaching a step); `delay_s[s]`: generating for step s sleeps first;
    `fail_at`: steps whose generation raises. Records the weights it loaded per step and its threads."""

    def __init__(
        self,
        gates: dict[int, threading.Event] | None = None,
        delay_s: dict[int, float] | None = None,
        fail_at: set[int] | None = None,
        gate_timeout_s: float = GATE_TIMEOUT_S,
    ) -> None:
        self.gates = gates or {}
        self.delay_s = delay_s or {}
        self.fail_at = fail_at or set()
        self.gate_timeout_s = gate_timeout_s
        self.loaded: dict[int, dict[str, str]] = {}
        self.threads: set[str] = set()
        self.starts = 0
        self.closes = 0
        self._step = -1

    def start(self, model_path: str) -> None:
        self.starts += 1

    def update_weights(self, folder: str) -> None:
        from safetensors.torch import load_file

        self.threads.add(threading.current_thread().name)
        step = self._step = step_of(folder)
        gate = self.gates.get(step)
        if gate is not None and not gate.wait(self.gate_timeout_s):
            raise TimeoutError(f"training never reached the gate of the eval of step {step}")
        self.loaded[step] = digests(load_file(str(Path(folder) / "model.safetensors")))

    def generate(self, prompts, sampling) -> list[list[Generation]]:
        time.sleep(self.delay_s.get(self._step, 0.0))
        if self._step in self.fail_at:
            raise RuntimeError("engine died")
        answer = Generation(text="\\boxed{1+2}", token_ids=(1, 2, 3), finish_reason="stop")
        return [[answer] * sampling.n for _ in prompts]

    def close(self) -> None:
        self.closes += 1


def task() -> CountdownTask:
    return CountdownTask(num_problems=3, num_numbers=(3,), max_tokens=8)


def evaluator(backend, **kwargs) -> GenerationEval:
    kwargs.setdefault("asynchronous", True)
    return GenerationEval([task()], backend=backend, export_dtype="keep", **kwargs)


def fit(
    tiny_model: str,
    root: Path,
    callbacks: list[pl.Callback],
    max_steps: int,
    logger: object | None = None,
    ckpt_path: str | None = None,
) -> pl.Trainer:
    pl.seed_everything(0)
    data = SFTDataModule(
        CountdownRegime(train_size=32, num_numbers=(3,), max_attempts=1),
        tokenizer=tiny_model,
        micro_batch_size=2,
        global_batch_size=4,
        max_length=512,
    )
    trainer = pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=logger if logger is not None else CSVLogger(root, name="", version=""),
        enable_checkpointing=any(isinstance(c, ModelCheckpoint) for c in callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=callbacks,
        default_root_dir=root,
        log_every_n_steps=1,
    )
    trainer.fit(SFTModule(model_name=tiny_model, learning_rate=1e-3), datamodule=data, ckpt_path=ckpt_path)
    return trainer


def csv_rows(root: Path) -> list[dict[str, str]]:
    with (root / "metrics.csv").open() as f:
        return list(csv.DictReader(f))


def steps_with(rows: list[dict[str, str]], key: str) -> list[int]:
    return [int(r["step"]) for r in rows if r.get(key)]


def assert_scored_its_own_step(backend: GatedBackend, progress: Progress, steps: list[int]) -> None:
    """The weights each eval loaded are bit-identical to the model's at its step, on the keys both have
    (the export adds `lm_head.weight` for tied embeddings), and differ from the next step's."""
    for step in steps:
        loaded, trained = backend.loaded[step], progress.weights[step]
        common = loaded.keys() & trained.keys()
        assert len(common) >= len(trained) - 1
        assert {k: loaded[k] for k in common} == {k: trained[k] for k in common}, step
        if step + 1 in progress.weights:
            assert {k: loaded[k] for k in common} != {k: progress.weights[step + 1][k] for k in common}


def test_training_goes_on_while_the_eval_runs_and_it_scores_its_own_step(tiny_model: str, tmp_path) -> None:
    progress = Progress()
    # The eval of step 0 may only load its weights once training has reached step 3.
    backend = GatedBackend(gates={0: progress.gate(3)})
    callback = evaluator(backend, every_n_steps=4)
    progress.evaluator = callback
    fit(tiny_model, tmp_path, [callback, progress], max_steps=6)

    assert callback.errors == 0 and [h["step"] for h in callback.history] == [0, 4, 6]
    assert_scored_its_own_step(backend, progress, [0, 4, 6])
    assert "MainThread" not in backend.threads  # generation ran on the worker thread
    assert callback.history[0]["metrics"]["eval/lag_steps"] >= 3  # logged at step >= 3, for step 0
    assert max(progress.queue_lengths) == 1
    # CSV: the eval rows carry the eval's step, and step 0's row was written after later train rows.
    rows = csv_rows(tmp_path)
    assert steps_with(rows, "eval/countdown/accuracy") == [0, 4, 6]
    eval0 = next(i for i, r in enumerate(rows) if r.get("eval/countdown/accuracy") and r["step"] == "0")
    # (Lightning logs the loss of the update that makes global_step k+1 at step k.)
    assert max(int(r["step"]) for r in rows[:eval0] if r.get("train/loss")) >= 2
    assert (tmp_path / "eval" / "step_000000" / "countdown.jsonl").is_file()
    assert list((tmp_path / "eval_weights").iterdir()) == []  # each eval's folder removed after use
    assert backend.closes >= 1  # teardown


def test_the_gate_blocks_a_synchronous_eval(tiny_model: str, tmp_path) -> None:
    """The same gate without `asynchronous`: training waits for the eval, never reaches step 3, and the
    eval times out. So the test above fails if evals stop running concurrently with training."""
    progress = Progress()
    backend = GatedBackend(gates={0: progress.gate(3)}, gate_timeout_s=1.0)
    callback = evaluator(backend, every_n_steps=4, asynchronous=False)
    fit(tiny_model, tmp_path, [callback, progress], max_steps=4)
    assert callback.errors == 1 and [h["step"] for h in callback.history] == [4]


@pytest.mark.parametrize("max_pending", [1, 2])
def test_skip_when_busy_counts_the_skipped_steps(tiny_model: str, tmp_path, max_pending: int) -> None:
    progress = Progress()
    backend = GatedBackend(gates={0: progress.gate(3)})
    callback = evaluator(backend, every_n_steps=1, when_busy="skip", max_pending=max_pending)
    progress.evaluator = callback
    fit(tiny_model, tmp_path, [callback, progress], max_steps=5)

    evaluated = [h["step"] for h in callback.history]
    skipped = steps_with(csv_rows(tmp_path), "eval/skipped")
    assert max(progress.queue_lengths) <= max_pending  # never queued beyond the bound
    # Step 0 blocks until step 3: with one slot steps 1 and 2 are skipped; with two, step 1 queues behind
    # step 0 and step 2 is skipped. The final step is always evaluated.
    must_skip = [1, 2] if max_pending == 1 else [2]
    assert set(must_skip) <= set(skipped) and not set(skipped) & set(evaluated)
    assert evaluated[0] == 0 and evaluated[-1] == 5 and evaluated == sorted(evaluated)
    assert max_pending == 1 or 1 in evaluated
    assert callback.skipped == len(skipped) and len(evaluated) + len(skipped) == 6
    assert_scored_its_own_step(backend, progress, evaluated)


def test_wait_when_busy_evaluates_every_step(tiny_model: str, tmp_path) -> None:
    progress = Progress()
    backend = GatedBackend(delay_s=dict.fromkeys(range(5), 0.5))
    callback = evaluator(backend, every_n_steps=1)
    progress.evaluator = callback
    fit(tiny_model, tmp_path, [callback, progress], max_steps=4)
    assert [h["step"] for h in callback.history] == [0, 1, 2, 3, 4] and callback.skipped == 0
    assert max(progress.queue_lengths) == 1
    assert_scored_its_own_step(backend, progress, [0, 1, 2, 3, 4])


def test_a_failed_background_eval_is_counted_and_the_next_one_retries(tiny_model: str, tmp_path) -> None:
    backend = GatedBackend(fail_at={2})
    callback = evaluator(backend, every_n_steps=2)
    trainer = fit(tiny_model, tmp_path, [callback], max_steps=6)
    assert trainer.global_step == 6  # training went on
    assert [h["step"] for h in callback.history] == [0, 4, 6] and callback.errors == 1
    assert backend.closes >= 2 and backend.starts >= 3  # closed after the failure, restarted for step 4
    assert callback.history[1]["metrics"]["eval/errors"] == 1.0
    rows = csv_rows(tmp_path)
    assert [(int(r["step"]), float(r["eval/errors"])) for r in rows if r.get("eval/errors")] == [
        (0, 0.0),
        (2, 1.0),
        (4, 1.0),
        (6, 1.0),
    ]
    assert list((tmp_path / "eval_weights").iterdir()) == []


def test_on_error_raise_stops_training(tiny_model: str, tmp_path) -> None:
    callback = evaluator(GatedBackend(fail_at={0}), every_n_steps=0, on_error="raise")
    with pytest.raises(RuntimeError, match="GenerationEval at step 0 failed: generating: RuntimeError"):
        fit(tiny_model, tmp_path, [callback], max_steps=30)
    assert callback.errors == 1 and callback.pending_steps == []


@pytest.mark.parametrize("monitor_first", [False, True])
def test_the_final_eval_is_awaited_and_the_monitor_sees_every_eval(
    tiny_model: str, tmp_path, monitor_first: bool
) -> None:
    # The eval of step 3 is still running when training ends at step 4; the final eval follows it.
    backend = GatedBackend(delay_s={3: 1.5, 4: 1.0})
    callback = evaluator(backend, every_n_steps=0, eval_steps=[1, 3])
    monitor = TrainingRegimeMonitor(id_tasks=["countdown"])
    fit(tiny_model, tmp_path, [monitor, callback] if monitor_first else [callback, monitor], max_steps=4)
    assert [h["step"] for h in callback.history] == [0, 1, 3, 4]
    assert [p.step for p in monitor.history] == [0, 1, 3, 4]  # every eval, at its own step, in order
    assert steps_with(csv_rows(tmp_path), "eval/countdown/accuracy") == [0, 1, 3, 4]
    assert steps_with(csv_rows(tmp_path), "regime/label") == [0, 1, 3, 4]
    assert callback.pending_steps == []


class Crash(RuntimeError):
    pass


class CrashAt(pl.Callback):
    """Raises at a step; `released` is set just before, `pending` keeps the evals in flight then."""

    def __init__(self, step: int, evaluator: GenerationEval) -> None:
        self.step = step
        self.evaluator = evaluator
        self.released = threading.Event()
        self.pending: list[int] = []

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            self.pending = self.evaluator.pending_steps
            self.released.set()
            raise Crash(f"simulated crash at step {self.step}")


def test_an_exception_still_logs_the_eval_in_flight(tiny_model: str, tmp_path) -> None:
    backend = GatedBackend(delay_s={2: 0.5})
    callback = evaluator(backend, every_n_steps=2)
    crash = CrashAt(3, callback)
    backend.gates[2] = crash.released  # the eval of step 2 cannot finish before the crash
    with pytest.raises(Crash):
        fit(tiny_model, tmp_path, [callback, crash], max_steps=6)
    assert crash.pending == [2]
    assert [h["step"] for h in callback.history] == [0, 2] and callback.pending_steps == []
    assert steps_with(csv_rows(tmp_path), "eval/countdown/accuracy") == [0, 2]
    assert backend.closes == 1


def test_checkpoints_wait_for_earlier_evals_and_resume_redoes_the_current_one(
    tiny_model: str, tmp_path
) -> None:
    backend = GatedBackend(delay_s={2: 1.5})
    callback = evaluator(backend, every_n_steps=2, at_end=False)
    ckpt = ModelCheckpoint(dirpath=tmp_path / "ckpt", every_n_train_steps=1, save_top_k=-1)
    fit(tiny_model, tmp_path / "run", [callback, ckpt], max_steps=3)

    def saved(step: int) -> dict:
        (path,) = (tmp_path / "ckpt").glob(f"*step={step}.ckpt")
        return torch.load(path, weights_only=False)["callbacks"][callback.state_key]

    # Step 2's checkpoint holds exactly the weights of the eval in flight: it is listed as pending. Step 3's
    # checkpoint no longer holds them, so saving it waited for that eval.
    assert [h["step"] for h in saved(2)["history"]] == [0] and saved(2)["pending"] == [2]
    assert [h["step"] for h in saved(3)["history"]] == [0, 2] and saved(3)["pending"] == []

    (from_two,) = (tmp_path / "ckpt").glob("*step=2.ckpt")
    resumed = evaluator(GatedBackend(), every_n_steps=2)
    progress = Progress()
    fit(tiny_model, tmp_path / "resumed", [resumed, progress], max_steps=4, ckpt_path=str(from_two))
    assert [h["step"] for h in resumed.history] == [0, 2, 4]  # step 2 redone from the checkpoint's weights
    assert_scored_its_own_step(resumed.backend, progress, [2, 4])


def test_aim_takes_metrics_for_an_earlier_step(tiny_model: str, tmp_path) -> None:
    from aim.storage.context import Context

    from sftlab.aim_logger import AimLogger
    from sftlab.report.reader import open_repo

    progress = Progress()  # first in the list: it opens the gate at step 2 before the evaluator waits there
    backend = GatedBackend(gates={0: progress.gate(2)})
    callback = evaluator(backend, every_n_steps=2)
    logger = AimLogger(repo=str(tmp_path / "runs"), run_name="async", system_tracking_interval=None)
    fit(tiny_model, tmp_path, [progress, callback], max_steps=4, logger=logger)
    assert callback.errors == 0 and callback.history[0]["metrics"]["eval/lag_steps"] >= 2

    (run,) = list(open_repo(tmp_path / "runs").iter_runs())
    accuracy = run.get_metric("eval/countdown/accuracy", Context({"stage": "eval"})).dataframe()
    lag = run.get_metric("eval/lag_steps", Context({"stage": "eval"})).dataframe()
    loss = run.get_metric("train/loss", Context({"stage": "train"})).dataframe()
    assert accuracy["step"].tolist() == [0, 2, 4] and lag["value"].tolist()[0] >= 2
    assert max(loss["step"].tolist()) >= 3
    texts = (Path(logger.save_dir) / "texts.jsonl").read_text()
    assert '"step": 0' in texts


def test_real_hf_backend_matches_the_synchronous_eval(tiny_model: str, tmp_path) -> None:
    histories, responses = {}, {}
    for mode in ("sync", "async"):
        backend = HFBackend()
        callback = GenerationEval([task()], backend=backend, every_n_steps=2, asynchronous=mode == "async")
        fit(tiny_model, tmp_path / mode, [callback], max_steps=4)
        histories[mode] = callback.history
        responses[mode] = {
            step: (tmp_path / mode / "eval" / f"step_{step:06d}" / "countdown.jsonl").read_text()
            for step in (0, 2, 4)
        }
        assert backend._model is None  # closed at teardown
    assert [h["step"] for h in histories["async"]] == [0, 2, 4]
    # Greedy generation from the same weights: the same responses and metrics at every step.
    assert responses["async"] == responses["sync"]
    for sync, asyn in zip(histories["sync"], histories["async"], strict=True):
        assert {k: v for k, v in asyn["metrics"].items() if k not in ("eval/time_s", "eval/lag_steps")} == {
            k: v for k, v in sync["metrics"].items() if k != "eval/time_s"
        }
    assert list((tmp_path / "async" / "eval_weights").iterdir()) == []


class LateEval(pl.Callback):
    """Writes GenerationEval-shaped metrics two steps after the step they describe (`eval/step`)."""

    def __init__(self, accuracy: dict[int, float]) -> None:
        self.accuracy = accuracy

    def on_train_batch_end(self, trainer, *args) -> None:
        step = trainer.global_step - 2
        if step in self.accuracy:
            trainer.callback_metrics["eval/id/accuracy"] = torch.tensor(self.accuracy[step])
            trainer.callback_metrics["eval/math/num_samples"] = torch.tensor(1000.0)
            trainer.callback_metrics["eval/step"] = torch.tensor(step)


def test_monitor_uses_the_eval_step_and_does_not_save_later_weights_as_best(tmp_path, caplog) -> None:
    monitor = TrainingRegimeMonitor(id_tasks=["math"], save_best_to=str(tmp_path / "best.ckpt"))
    bar = SFTLabProgressBar(tty=False, log_every_n_steps=4)
    trainer = pl.Trainer(
        max_steps=8,
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="", version=""),
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[LateEval({0: 0.1, 2: 0.5, 4: 0.6}), monitor, bar],
        default_root_dir=tmp_path,
    )
    with caplog.at_level(logging.WARNING, logger="sftlab.callbacks.training_regime_monitor"):
        trainer.fit(BoringModel())
    assert [p.step for p in monitor.history] == [0, 2, 4]
    assert steps_with(csv_rows(tmp_path), "regime/label") == [0, 2, 4]
    assert not (tmp_path / "best.ckpt").exists() and monitor.saved_best_step is None
    assert "arrived at step 4" in caplog.text and "not saved" in caplog.text
    assert bar.lines[0].startswith("step 4/8 | latest eval (step 2): id/accuracy=0.500")


def test_bad_arguments_name_the_value_and_the_fix() -> None:
    with pytest.raises(ValueError) as err:
        GenerationEval([task()], backend=GatedBackend(), asynchronous=True, eval_ranks="all", max_pending=0)
    message = str(err.value)
    assert (
        "eval_ranks='all'" in message and "eval_ranks: rank0" in message and "asynchronous: false" in message
    )
    assert "max_pending=0" in message
    with pytest.raises(ValueError, match="when_busy='later'"):
        GenerationEval([task()], backend=GatedBackend(), when_busy="later")  # type: ignore[arg-type]


# -- two DDP ranks --------------------------------------------------------------------------------------
def ddp_job(job_path: str) -> None:
    """One rank of a 2-process DDP fit (gloo, CPU) with an asynchronous eval on rank 0, a checkpoint every
    step (whose state_dict waits collectively) and a regime monitor on every rank; each rank writes what
    it recorded to `out/rank{R}.json`."""
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    pl.seed_everything(0)
    backend = GatedBackend(delay_s={0: 1.0, 2: 2.0, 3: 1.0})
    callback = evaluator(backend, every_n_steps=0, eval_steps=[2, 3], on_error="raise", barrier_timeout_s=120)
    monitor = TrainingRegimeMonitor(id_tasks=["countdown"])
    ckpt = ModelCheckpoint(dirpath=out / "ckpt", every_n_train_steps=1, save_top_k=-1)
    data = SFTDataModule(
        CountdownRegime(train_size=16, num_numbers=(3,), max_attempts=1),
        tokenizer=job["model"],
        micro_batch_size=2,
        global_batch_size=4,
        max_length=512,
    )
    trainer = pl.Trainer(
        max_steps=4,
        accelerator="cpu",
        strategy="ddp",
        devices=2,
        logger=CSVLogger(out, name="", version=""),
        callbacks=[callback, monitor, ckpt],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
        log_every_n_steps=1,
    )
    trainer.fit(SFTModule(model_name=job["model"], learning_rate=1e-3), datamodule=data)
    record = {
        "history": [h["step"] for h in callback.history],
        "monitor": [p.step for p in monitor.history],
        "eval_step": int(trainer.callback_metrics["eval/step"]),
        "loaded": sorted(backend.loaded),
        "checkpoints": {
            p.name: torch.load(p, weights_only=False)["callbacks"][callback.state_key]
            for p in sorted((out / "ckpt").glob("*.ckpt"))
        },
    }
    (out / f"rank{trainer.global_rank}.json").write_text(json.dumps(record))


@pytest.mark.slow
def test_two_ddp_ranks_agree_and_only_rank_zero_evaluates(tiny_model: str, tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (tmp_path / "job.json").write_text(json.dumps({"model": tiny_model, "out": str(out)}))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(root), env.get("PYTHONPATH", "")])
    with (tmp_path / "log.txt").open("w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__)), str(tmp_path / "job.json")],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=root,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=400)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail("the DDP job hung; log:\n" + (tmp_path / "log.txt").read_text()[-3000:])
    assert rc == 0, (tmp_path / "log.txt").read_text()[-3000:]
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    for rank in ranks:  # every rank recorded the same evals, at their own steps, and so did its monitor
        assert rank["history"] == rank["monitor"] == [0, 2, 3, 4] and rank["eval_step"] == 4
        assert rank["checkpoints"] == ranks[0]["checkpoints"]
    assert ranks[0]["loaded"] == [0, 2, 3, 4] and ranks[1]["loaded"] == []  # only rank 0 generated
    saved = ranks[0]["checkpoints"]
    # Step 3's checkpoint no longer holds step 2's weights: saving it waited for that eval (2 s long).
    step3 = next(v for k, v in saved.items() if "step=3" in k)
    assert [h["step"] for h in step3["history"]][-1] == 2 and step3["pending"] == [3]
    assert steps_with(csv_rows(out), "eval/countdown/accuracy") == [0, 2, 3, 4]


if __name__ == "__main__":
    ddp_job(sys.argv[1])
