"""GenerationEval: evaluate the model being trained by generation, at step 0, every N steps and at the end.

The callback decides *when*; the evaluation core (`sftlab.eval.evaluate`) decides *how*. Before each eval
the current weights are gathered on every rank (a collective: FSDP and ZeRO-3 shards are consolidated,
`sftlab.distributed.full_state_dict`), written by rank 0 and loaded into a persistent backend engine in
place, so the engine starts once per run. `eval_ranks="rank0"` generates on rank 0 while the other ranks
wait in a gloo barrier with `barrier_timeout_s` (not an NCCL collective, whose watchdog would kill a long
eval); `"all"` splits each task's prompts across ranks, each with its own engine, and gathers the
generations to rank 0 for scoring and logging (the same numbers as rank0 for greedy decoding). With
`"all"` on several nodes the run folder must be on a filesystem every node sees. A backend crash or time-out is logged (`eval/errors`), training
goes on, and the next eval restarts the engine; metrics already logged stay logged. Eval history is saved
with checkpoints so a resumed run neither repeats nor loses evals.

Asynchronous mode (`asynchronous=True`): the weights are still exported on the training thread at the eval
step (so the eval scores exactly that step's weights), each eval into a fresh folder, but generation and
scoring run on one background thread (`sftlab.callbacks.eval_worker`) while training goes on. Finished
evals are picked up on the training thread once per optimizer step and logged at the step they scored, in
step order; loggers and trainer state are only touched on the training thread. Training waits only for the
export, for a running eval when the next one is due and `max_pending` evals are in flight (or skips it
with `when_busy="skip"`), and, at a checkpoint save, for evals of earlier steps. Consumers of the eval
metrics see them late: `trainer.callback_metrics` holds `eval/step`, the step the latest metrics belong
to (TrainingRegimeMonitor reads it). With several ranks only global rank 0 generates; every rank polls
the same way, so all record each eval at the same optimizer step.
"""

from __future__ import annotations

import functools
import json
import logging
import shutil
import time
from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from sftlab.callbacks.eval_worker import EvalOutcome, EvalQueue, run_eval_job
from sftlab.callbacks.progress import EvalProgress
from sftlab.callbacks.text_log import log_distribution, log_texts, run_dir
from sftlab.distributed import barrier, broadcast_object, cpu_group, full_state_dict, gather_objects
from sftlab.eval.backends.base import GenerationBackend
from sftlab.eval.evaluate import TaskResult, evaluate, flatten_metrics, render_prompts
from sftlab.eval.export import export_state_dict
from sftlab.eval.sharding import ReplayBackend, join_shards, shard_bounds
from sftlab.eval.task import EvalTask
from sftlab.metric_names import EVAL_ERRORS, EVAL_LAG_STEPS, EVAL_SKIPPED, EVAL_STEP, EVAL_TIME_S

log = logging.getLogger(__name__)

# The step whose weights the latest eval metrics in `trainer.callback_metrics` scored. Equal to
# `global_step` in synchronous mode; earlier in asynchronous mode. Not logged (the logged step says it).
EVAL_STEP_METRIC = EVAL_STEP


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
        on_error: "log" (record `eval/errors`, keep training) or "raise" (on every rank).
        eval_ranks: "rank0" (one engine, on global rank 0) or "all" (prompts split across all ranks).
        barrier_timeout_s: how long ranks wait for each other around an eval (the longest eval you
            expect); past it the job stops with an error naming the rank that did not arrive.
        progress_bar: show a tqdm bar of prompts scored per task (on a TTY; otherwise one line per task
            per eval).
        asynchronous: generate and score on a background thread while training goes on (see the module
            docstring). The eval's metrics are logged at its own step once it finishes, with
            `eval/lag_steps` (how many optimizer steps later that was). The weights are exported on the
            training thread as in synchronous mode. Needs `eval_ranks="rank0"`. Pays off with a backend
            that computes elsewhere (VLLMBackend: its own process, ideally its own GPUs); with
            `enable_sleep_mode` on the training GPU the engine is awake while training runs, so size
            `gpu_memory_utilization` for both. HFBackend runs in this process and shares torch's global
            RNG with training: sampling evals and random training ops (dropout) are then not reproducible.
            The final eval is always awaited (at fit end and teardown; after an exception for at most
            `barrier_timeout_s`, after Ctrl-C only evals already finished are logged). A checkpoint save
            first waits for evals of earlier steps so the saved history is complete; an eval of the
            checkpoint's own step still in flight is redone on resume.
        max_pending: most evals handed to the background thread and not yet logged (each holds one
            exported copy of the weights on disk). Only with `asynchronous`.
        when_busy: what an eval step does when `max_pending` evals are still in flight: "wait" (default:
            training pauses until the oldest finishes, so every scheduled step is evaluated) or "skip"
            (training never waits; the step is not evaluated and `eval/skipped` counts it). The final
            eval (`at_end`) always waits. Only with `asynchronous`.
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
        progress_bar: bool = False,
        eval_ranks: Literal["rank0", "all"] = "rank0",
        barrier_timeout_s: float = 3600.0,
        asynchronous: bool = False,
        max_pending: int = 1,
        when_busy: Literal["wait", "skip"] = "wait",
    ) -> None:
        problems = []
        if max_pending < 1:
            problems.append(f"max_pending must be >= 1, got max_pending={max_pending}")
        if when_busy not in ("wait", "skip"):
            problems.append(f'when_busy must be "wait" or "skip", got when_busy={when_busy!r}')
        if asynchronous and eval_ranks != "rank0":
            problems.append(
                f"asynchronous=True evaluates on global rank 0 only, got eval_ranks={eval_ranks!r}; set "
                "eval_ranks: rank0 (one engine, training goes on meanwhile) or asynchronous: false"
            )
        if problems:
            raise ValueError("invalid GenerationEval arguments: " + "; ".join(problems))
        if every_n_steps < 0:
            raise ValueError(f"every_n_steps must be >= 0, got every_n_steps={every_n_steps}")
        if barrier_timeout_s <= 0:
            raise ValueError(f"barrier_timeout_s must be > 0, got barrier_timeout_s={barrier_timeout_s}")
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
        self.progress_bar = progress_bar
        self.eval_ranks = eval_ranks
        self.barrier_timeout_s = barrier_timeout_s
        self.asynchronous = asynchronous
        self.max_pending = max_pending
        self.when_busy = when_busy
        self.history: list[dict[str, Any]] = []  # {"step": int, "metrics": {key: value}}
        self.errors = 0
        self.skipped = 0  # eval steps skipped with when_busy="skip"
        self._pending = EvalQueue()  # asynchronous mode: evals in flight, oldest first
        self._trainer: pl.Trainer | None = None  # for the checkpoint-time wait in state_dict
        self._resume_pending: set[int] = set()  # evals in flight when the loaded checkpoint was saved
        self._tokenizer: Any = None
        self._last_checked_step = -1
        self._folder: str | None = None  # where this eval's weights were written (rank 0; all ranks in "all")
        self._failure: tuple[str, BaseException | None] | None = None  # this rank's first failure this eval

    # -- when ------------------------------------------------------------------------------------------
    def evaluated_steps(self) -> set[int]:
        return {h["step"] for h in self.history}

    def due(self, step: int) -> bool:
        if step in self.evaluated_steps():
            return False
        if step == 0:
            return self.at_start
        return (self.every_n_steps > 0 and step % self.every_n_steps == 0) or step in self.eval_steps

    @property
    def pending_steps(self) -> list[int]:
        """Steps of the evals running or queued in the background (asynchronous mode), oldest first."""
        return self._pending.steps

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        self._last_checked_step = step
        resume, self._resume_pending = self._resume_pending, set()
        lost = sorted(s for s in resume if s != step and s not in self.evaluated_steps())
        if lost:
            log.warning("evals of steps %s were in flight at the checkpoint and cannot be redone", lost)
        if step in self.evaluated_steps():
            return
        if (step == 0 and self.at_start) or step in resume:
            self._evaluate(trainer, pl_module)

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any) -> None:
        step = trainer.global_step
        if step == self._last_checked_step:
            return  # still accumulating: no optimizer step since the last check
        self._last_checked_step = step
        if self._pending:
            self._collect(trainer, block=False, limit=1)  # one per hook: the monitor sees each eval
        if self.due(step):
            self._evaluate(trainer, pl_module)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        step = trainer.global_step
        if self.asynchronous:
            # One eval logged per hook, so a TrainingRegimeMonitor checking after each hook sees them all:
            # the oldest in flight here, the final one (submitted here) in on_fit_end.
            self._collect(trainer, block=True, limit=1)
            if self.at_end and step not in self.evaluated_steps() and step not in self.pending_steps:
                self._evaluate(trainer, pl_module, when_busy="wait")  # the final eval is never skipped
            return
        if self.at_end and step not in self.evaluated_steps():
            self.run(trainer, pl_module)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._pending:
            self._collect(trainer, block=True, limit=1)

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        cpu_group()  # creating the gloo group for barriers is collective: do it now, on every rank
        self._trainer = trainer

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._pending:
            logged = self._collect(trainer, block=True)
            if logged > 1:
                log.warning(
                    "%d background evals were logged together at teardown; a TrainingRegimeMonitor records "
                    "only the last of them (max_pending=%d: use max_pending: 1 to keep every eval)",
                    logged,
                    self.max_pending,
                )
        self._pending.shutdown(wait_s=self.barrier_timeout_s)
        self.backend.close()

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Training failed: still log the evals in flight (rank 0, no collectives: other ranks may be gone),
        waiting at most `barrier_timeout_s`; after Ctrl-C only those already finished (Lightning ignores
        further Ctrl-C while it shuts down, so a wait could not be cut short). Lightning calls no teardown
        hook after an exception."""
        if not self.asynchronous:
            return
        if self._pending and trainer.is_global_zero:
            wait = not isinstance(exception, KeyboardInterrupt)
            if wait:
                log.warning(
                    "training stopped with %s; waiting up to %.0f s to log the evals in flight (steps %s)",
                    type(exception).__name__,
                    self.barrier_timeout_s,
                    self.pending_steps,
                )
            try:
                self._collect(trainer, block=wait, collective=False, timeout_s=self.barrier_timeout_s)
            except Exception as exc:  # noqa: BLE001 - never mask the exception that stopped training
                log.error("logging the evals in flight failed: %s: %s", type(exc).__name__, exc)
        if self._pending:  # not finished in time, or a rank that only mirrors the queue
            if trainer.is_global_zero:
                log.error("abandoned the unfinished evals of steps %s", self.pending_steps)
            self._pending.abandon()  # the backend stays with the abandoned thread: not closed here
            return
        self._pending.shutdown(wait_s=self.barrier_timeout_s)
        self.backend.close()

    def _evaluate(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, when_busy: str | None = None
    ) -> None:
        """Evaluate now (synchronous) or export and hand the eval to the worker (asynchronous)."""
        if not self.asynchronous:
            self.run(trainer, pl_module)
            return
        if len(self._pending) >= self.max_pending:
            if (when_busy or self.when_busy) == "skip":
                self._skip(trainer)
                return
            log.info(
                "eval at step %d waits for the background eval of step %d (max_pending=%d)",
                trainer.global_step,
                self.pending_steps[0],
                self.max_pending,
            )
            self._collect(trainer, block=True, limit=len(self._pending) - self.max_pending + 1)
        self._submit(trainer, pl_module)

    # -- how -------------------------------------------------------------------------------------------
    def run(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Export weights, generate and score every task, log. Returns the logged metrics.

        Collective: every rank calls it at the same step (the hooks above run on all ranks). A failure on
        any rank is caught there, carried through the gather/broadcast, and handled on every rank alike
        (logged, or raised everywhere with `on_error="raise"`), so no rank is left waiting."""
        step = trainer.global_step
        started = time.perf_counter()
        was_training = pl_module.training
        pl_module.eval()
        self._failure = None
        metrics: dict[str, float] = {}
        try:
            folder = self._guard("exporting eval weights", lambda: self._export(trainer, pl_module))
            if self.eval_ranks == "all":
                results = self._generate_on_all_ranks(trainer, pl_module, folder, step)
            elif trainer.is_global_zero and self._failure is None:
                results = self._guard("generating", lambda: self._generate_here(pl_module, step))
            else:
                results = None
            if trainer.is_global_zero and results is not None and self._failure is None:
                metrics = flatten_metrics(results)
                metrics[EVAL_TIME_S] = time.perf_counter() - started
                metrics[EVAL_ERRORS] = float(self.errors)
                self._guard(
                    "logging eval results", lambda: self._log_results(trainer, metrics, results, step)
                )
        finally:
            pl_module.train(was_training)
        # Ranks that did not evaluate wait here (gloo, with a timeout), then learn the outcome.
        barrier(f"GenerationEval at step {step}", self.barrier_timeout_s)
        failure = self._failure[0] if self._failure is not None and trainer.is_global_zero else None
        metrics, failure = broadcast_object((metrics, failure))
        if failure is not None:
            return self._failed(trainer, step, failure)
        self._record(trainer, step, metrics)
        return metrics

    def _record(self, trainer: pl.Trainer, step: int, metrics: dict[str, float]) -> None:
        """Every rank: the eval's metrics into trainer state and the history."""
        for key, value in metrics.items():
            trainer.callback_metrics[key] = torch.tensor(value)
        if metrics:
            trainer.callback_metrics[EVAL_STEP_METRIC] = torch.tensor(step)
            self.history.append({"step": step, "metrics": metrics})

    def _guard(self, what: str, fn: Any) -> Any:
        """Run `fn`, keeping the first exception (with a one-line description) instead of raising it."""
        if self._failure is not None:
            return None
        try:
            return fn()
        except Exception as exc:
            self._failure = (f"{what}: {type(exc).__name__}: {exc}", exc)
            return None

    def _failed(
        self, trainer: pl.Trainer, step: int, failure: str, close_backend: bool = True
    ) -> dict[str, float]:
        self.errors += 1
        own = self._failure[1] if self._failure is not None else None
        if self.on_error == "raise":
            raise RuntimeError(f"GenerationEval at step {step} failed: {failure}") from own
        log.error(
            "eval at step %d failed; training continues and the next eval restarts the backend: %s",
            step,
            failure,
            exc_info=own,
        )
        if close_backend:  # asynchronous mode: the worker closed it on its own thread
            self.backend.close()
        if trainer.is_global_zero:
            self._log(trainer, {EVAL_ERRORS: float(self.errors)}, step)
        return {}

    def _generate_here(self, pl_module: pl.LightningModule, step: int) -> list[TaskResult]:
        self.backend.start(pl_module.model_path)
        self.backend.update_weights(self._folder)
        tokenizer = self._get_tokenizer(pl_module.model_path)
        return [
            evaluate(task, self.backend, tokenizer, progress=self._progress(task, step))
            for task in self.tasks
        ]

    def _generate_on_all_ranks(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, folder: str | None, step: int
    ) -> list[TaskResult] | None:
        # Every rank loads the folder rank 0 wrote: wait for it, and learn whether the export failed.
        barrier(f"GenerationEval weight export at step {step}", self.barrier_timeout_s)
        export_failure = self._failure[0] if self._failure is not None else None
        self._folder, export_failure = broadcast_object((folder, export_failure))
        rank, world = trainer.global_rank, trainer.world_size

        def generate_shards() -> dict[str, list]:
            self.backend.start(pl_module.model_path)
            self.backend.update_weights(self._folder)
            tokenizer = self._get_tokenizer(pl_module.model_path)
            shards = {}
            for task in self.tasks:
                prompts = render_prompts(task.items(), tokenizer)
                lo, hi = shard_bounds(len(prompts), world)[rank]
                shards[task.name] = self.backend.generate(prompts[lo:hi], task.sampling) if hi > lo else []
            return shards

        shards = (
            None if export_failure is not None else self._guard(f"generating on rank {rank}", generate_shards)
        )
        barrier(f"GenerationEval generation at step {step}", self.barrier_timeout_s)
        own_failure = self._failure[0] if self._failure is not None else None
        gathered = gather_objects((shards, own_failure))
        if not trainer.is_global_zero or gathered is None or self._failure is not None:
            return None
        failed = [f for _, f in gathered if f is not None]
        if export_failure is None and failed:
            self._failure = ("; ".join(failed), None)
            return None

        def score() -> list[TaskResult]:
            tokenizer = self._get_tokenizer(pl_module.model_path)
            results = []
            for task in self.tasks:
                outputs = join_shards([g[task.name] for g, _ in gathered], len(task.items()))
                results.append(
                    evaluate(task, ReplayBackend(outputs), tokenizer, progress=self._progress(task, step))
                )
            return results

        return self._guard("scoring", score)

    def _progress(self, task: EvalTask, step: int) -> Any:
        return EvalProgress(task.name, step) if self.progress_bar else None

    def _export(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, subfolder: str | None = None
    ) -> str | None:
        """Collective: gather the full weights (all ranks); rank 0 writes them and returns the folder
        (`eval_weights`, reused by every synchronous eval, or a fresh `eval_weights/<subfolder>`)."""
        state = full_state_dict(trainer, pl_module)
        self._folder = None
        if state is None:
            return None
        model = pl_module.model
        out = run_dir(trainer) / "eval_weights"
        if subfolder is not None:
            out = out / subfolder
            shutil.rmtree(out, ignore_errors=True)  # a stale copy from a crashed run; no eval reads it
        tied = bool(getattr(model.config, "tie_word_embeddings", False))
        dtype = self._export_torch_dtype(pl_module)
        export_state_dict(
            state, out, source_folder=pl_module.model_path, tie_word_embeddings=tied, dtype=dtype
        )
        self._folder = str(out)
        return self._folder

    def _log_results(
        self, trainer: pl.Trainer, metrics: dict[str, float], results: list[TaskResult], step: int
    ) -> None:
        self._log(trainer, metrics, step)
        self._write_records(trainer, results, step)

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
            log_texts(trainer, f"eval/{result.task}/samples", samples, step, {"task": result.task})
            lengths = [float(r["num_tokens"]) for r in result.records if r.get("num_tokens") is not None]
            context = {"stage": "eval", "task": result.task}
            log_distribution(trainer, f"eval/{result.task}/response_tokens", lengths, step, context)
            # Tasks may offer notable cases as text (e.g. HEx-PHI's self-jailbreak pairs).
            examples = getattr(next((t for t in self.tasks if t.name == result.task), None), "examples", None)
            if examples is not None:
                cases = examples(result.records, self.num_text_samples)
                log_texts(trainer, f"eval/{result.task}/examples", cases, step, {"task": result.task})

    # -- asynchronous mode -----------------------------------------------------------------------------
    def _submit(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Collective: export this step's weights to a fresh folder, then hand the eval to the worker."""
        step = trainer.global_step
        started = time.perf_counter()
        subfolder = f"step_{step:06d}"
        self._failure = None
        folder = self._guard("exporting eval weights", lambda: self._export(trainer, pl_module, subfolder))
        failure = self._failure[0] if self._failure is not None and trainer.is_global_zero else None
        if failure is not None:
            shutil.rmtree(run_dir(trainer) / "eval_weights" / subfolder, ignore_errors=True)
        failure = broadcast_object(failure)  # every rank must agree whether an eval is in flight
        if failure is not None:
            self._failed(trainer, step, failure, close_backend=False)
            return
        job = None
        if trainer.is_global_zero:
            assert folder is not None
            model_path = pl_module.model_path
            job = functools.partial(
                run_eval_job,
                step,
                folder,
                model_path,
                self.backend,
                self.tasks,
                lambda: self._get_tokenizer(model_path),
                lambda task: self._progress(task, step),
                time.perf_counter() - started,
            )
        self._pending.submit(step, job)

    def _skip(self, trainer: pl.Trainer) -> None:
        self.skipped += 1
        log.warning(
            "eval at step %d skipped (when_busy='skip'): the evals of steps %s are still running; %d skipped "
            "so far. Evaluate less often, raise max_pending, or set when_busy: wait to evaluate every step",
            trainer.global_step,
            self.pending_steps,
            self.skipped,
        )
        if trainer.is_global_zero:
            self._log(trainer, {EVAL_SKIPPED: float(self.skipped)}, trainer.global_step)

    def _collect(
        self,
        trainer: pl.Trainer,
        *,
        block: bool,
        limit: int | None = None,
        before_step: int | None = None,
        collective: bool = True,
        timeout_s: float | None = None,
    ) -> int:
        """Log finished background evals, oldest first, at the steps they scored; returns how many.

        `block` waits for unfinished ones, else the first unfinished one stops; `limit`, `before_step` and
        `timeout_s` as for `EvalQueue.finished`. Collective unless `collective=False`: rank 0 picks and
        logs, then every rank records the same evals (metrics, history, failures), so trainer state and
        later wait/skip decisions agree across ranks. With on_error="raise" a failure is raised after all
        picked evals are recorded."""
        own: dict[int, tuple[str, BaseException | None]] = {}
        payload: list[tuple[int, dict[str, float], str | None]] | None = None
        if trainer.is_global_zero:
            payload = []
            for outcome in self._pending.finished(
                block=block, limit=limit, before_step=before_step, timeout_s=timeout_s
            ):
                failures = sum(1 for _, _, f in payload if f is not None)
                payload.append(self._report(trainer, outcome, failures, own))
        if collective:
            if block and self._pending:
                what = f"GenerationEval waiting for the eval of step {self._pending.steps[0]}"
                barrier(what, self.barrier_timeout_s)
            payload = broadcast_object(payload)
        raised: RuntimeError | None = None
        for step, metrics, failure in payload or []:
            self._pending.pop()
            if failure is None:
                self._record(trainer, step, metrics)
                continue
            self._failure = own.get(step)
            try:
                self._failed(trainer, step, failure, close_backend=False)
            except RuntimeError as exc:
                raised = raised or exc
        if raised is not None:
            raise raised
        return len(payload or [])

    def _report(
        self,
        trainer: pl.Trainer,
        outcome: EvalOutcome,
        earlier_failures: int,
        own: dict[int, tuple[str, BaseException | None]],
    ) -> tuple[int, dict[str, float], str | None]:
        """Rank 0: log one finished eval at its step; (step, metrics, failure) for every rank."""
        step = outcome.step
        if outcome.failure is not None or outcome.results is None:
            own[step] = (outcome.failure or "no results", outcome.error)
            return step, {}, own[step][0]
        metrics = flatten_metrics(outcome.results)
        metrics[EVAL_TIME_S] = outcome.seconds
        metrics[EVAL_LAG_STEPS] = float(trainer.global_step - step)
        metrics[EVAL_ERRORS] = float(self.errors + earlier_failures)
        results = outcome.results
        self._failure = None
        self._guard("logging eval results", lambda: self._log_results(trainer, metrics, results, step))
        if self._failure is not None:
            own[step] = self._failure
            return step, {}, self._failure[0]
        return step, metrics, None

    # -- resume ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """History and error count; in asynchronous mode also the evals in flight and the skip count.

        Called on every rank when a checkpoint is saved. Asynchronous mode first waits for (and logs) the
        evals of steps before the checkpoint's, whose weights the checkpoint no longer holds, so the saved
        history is complete; an eval of the checkpoint's own step may still run and is listed in `pending`:
        a run resumed from this checkpoint redoes it, from the same weights."""
        state: dict[str, Any] = {"history": self.history, "errors": self.errors}
        if not self.asynchronous:
            return state
        trainer = self._trainer
        if trainer is not None and self._pending and self.pending_steps[0] < trainer.global_step:
            self._collect(trainer, block=True, before_step=trainer.global_step)
        state.update(pending=self.pending_steps, skipped=self.skipped)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.errors = int(state_dict.get("errors", 0))
        self.skipped = int(state_dict.get("skipped", 0))
        self._resume_pending = {int(s) for s in state_dict.get("pending", [])}
