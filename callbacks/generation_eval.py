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
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from sftlab.callbacks.progress import EvalProgress
from sftlab.callbacks.text_log import log_distribution, log_texts, run_dir
from sftlab.distributed import barrier, broadcast_object, cpu_group, full_state_dict, gather_objects
from sftlab.eval.backends.base import GenerationBackend
from sftlab.eval.evaluate import TaskResult, evaluate, flatten_metrics, render_prompts
from sftlab.eval.export import export_state_dict
from sftlab.eval.sharding import ReplayBackend, join_shards, shard_bounds
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
        on_error: "log" (record `eval/errors`, keep training) or "raise" (on every rank).
        eval_ranks: "rank0" (one engine, on global rank 0) or "all" (prompts split across all ranks).
        barrier_timeout_s: how long ranks wait for each other around an eval (the longest eval you
            expect); past it the job stops with an error naming the rank that did not arrive.
        progress_bar: show a tqdm bar of prompts scored per task (on a TTY; otherwise one line per task
            per eval).
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
    ) -> None:
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
        self.history: list[dict[str, Any]] = []  # {"step": int, "metrics": {key: value}}
        self.errors = 0
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

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        cpu_group()  # creating the gloo group for barriers is collective: do it now, on every rank

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self.backend.close()

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
                metrics["eval/time_s"] = time.perf_counter() - started
                metrics["eval/errors"] = float(self.errors)
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
        for key, value in metrics.items():
            trainer.callback_metrics[key] = torch.tensor(value)
        if metrics:
            self.history.append({"step": step, "metrics": metrics})
        return metrics

    def _guard(self, what: str, fn: Any) -> Any:
        """Run `fn`, keeping the first exception (with a one-line description) instead of raising it."""
        if self._failure is not None:
            return None
        try:
            return fn()
        except Exception as exc:
            self._failure = (f"{what}: {type(exc).__name__}: {exc}", exc)
            return None

    def _failed(self, trainer: pl.Trainer, step: int, failure: str) -> dict[str, float]:
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
        self.backend.close()
        if trainer.is_global_zero:
            self._log(trainer, {"eval/errors": float(self.errors)}, step)
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

    def _export(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> str | None:
        """Collective: gather the full weights (all ranks); rank 0 writes them and returns the folder."""
        state = full_state_dict(trainer, pl_module)
        self._folder = None
        if state is None:
            return None
        model = pl_module.model
        out = run_dir(trainer) / "eval_weights"
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

    # -- resume ----------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "errors": self.errors}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.history = list(state_dict.get("history", []))
        self.errors = int(state_dict.get("errors", 0))
