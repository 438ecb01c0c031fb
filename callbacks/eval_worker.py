"""The background half of GenerationEval's asynchronous mode: one thread that generates and scores evals.

`GenerationEval(asynchronous=True)` exports the weights of an eval step on the training thread, then
submits `run_eval_job` here and lets training go on. The worker runs the submitted jobs one at a time,
in submission (= step) order, on a single daemon thread, and reports each as an `EvalOutcome` through a
`concurrent.futures.Future`. A job never raises: a failure comes back as `EvalOutcome.failure` (the
backend is closed first, on this thread, so the next eval restarts it), and the job deletes its exported
weight folder when it is done with it, whatever happened.

This module knows the evaluation core (backend, tasks, `evaluate`) and nothing of Lightning: it neither
logs metrics nor touches trainer state. Logging, history and failure counting stay on the training
thread in the callback, so loggers (Aim, CSV) are only ever called from one thread.
"""

from __future__ import annotations

import logging
import queue
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeoutError
from dataclasses import dataclass
from typing import Any

from sftlab.eval.backends.base import GenerationBackend
from sftlab.eval.evaluate import TaskResult, evaluate
from sftlab.eval.task import EvalTask

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvalOutcome:
    """What one background eval produced: task results, or a one-line failure (and its exception)."""

    step: int
    results: list[TaskResult] | None
    failure: str | None = None
    error: BaseException | None = None
    seconds: float = 0.0  # export (training thread) + load, generate and score (worker)


def run_eval_job(
    step: int,
    folder: str,
    model_path: str,
    backend: GenerationBackend,
    tasks: Sequence[EvalTask],
    tokenizer: Callable[[], Any],
    progress: Callable[[EvalTask], Any],
    export_s: float = 0.0,
) -> EvalOutcome:
    """Load `folder` into the backend, generate and score every task. Runs on the worker thread.

    The folder holds the weights of `step` only (GenerationEval exports each eval to a fresh folder) and
    is deleted here when the job ends: nothing else reads it after submission."""
    started = time.perf_counter()
    try:
        backend.start(model_path)
        backend.update_weights(folder)
        tok = tokenizer()
        results = [evaluate(task, backend, tok, progress=progress(task)) for task in tasks]
        return EvalOutcome(step, results, seconds=export_s + time.perf_counter() - started)
    except Exception as exc:
        # Same thread as every other backend call: no eval is using the engine while it is closed.
        try:
            backend.close()
        except Exception as close_exc:  # noqa: BLE001 - a dead engine may fail to close; the failure is logged anyway
            log.warning(
                "closing the backend after a failed eval raised %s: %s", type(close_exc).__name__, close_exc
            )
        return EvalOutcome(
            step,
            None,
            failure=f"generating: {type(exc).__name__}: {exc}",
            error=exc,
            seconds=export_s + time.perf_counter() - started,
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class _Pending:
    step: int
    future: Future[EvalOutcome] | None  # None on ranks that only mirror the queue


class EvalQueue:
    """The evals handed to the worker and not yet logged, oldest (= lowest step) first.

    In a multi-rank job every rank keeps the queue of steps, so that all take the same wait / skip
    decisions, but only global rank 0 submits jobs (`job=None` elsewhere) and reads their outcomes."""

    def __init__(self, name: str = "sftlab-eval") -> None:
        self._pending: deque[_Pending] = deque()
        self._worker = EvalWorker(name)

    def __len__(self) -> int:
        return len(self._pending)

    @property
    def steps(self) -> list[int]:
        return [p.step for p in self._pending]

    def submit(self, step: int, job: Callable[[], EvalOutcome] | None) -> None:
        self._pending.append(_Pending(step, None if job is None else self._worker.submit(job)))

    def finished(
        self,
        *,
        block: bool,
        limit: int | None = None,
        before_step: int | None = None,
        timeout_s: float | None = None,
    ) -> list[EvalOutcome]:
        """The oldest finished evals, in order, without removing them (rank 0). At most `limit`, only steps
        before `before_step`; `block` waits for unfinished ones (at most `timeout_s` each), else the first
        unfinished one ends the list."""
        out: list[EvalOutcome] = []
        for pending in list(self._pending):
            if (limit is not None and len(out) >= limit) or (
                before_step is not None and pending.step >= before_step
            ):
                break
            if pending.future is None or (not block and not pending.future.done()):
                break
            try:
                out.append(pending.future.result(timeout=timeout_s))
            except FutureTimeoutError:
                break
        return out

    def pop(self) -> int:
        """Remove the oldest eval (once it has been logged); its step."""
        return self._pending.popleft().step

    def abandon(self) -> list[int]:
        """Forget every eval in flight (their thread ends with the process); their steps."""
        steps = self.steps
        self._pending.clear()
        self._worker.shutdown()
        return steps

    def shutdown(self, wait_s: float = 0.0) -> None:
        self._worker.shutdown(wait_s)


class EvalWorker:
    """One daemon thread running submitted callables in order; `submit` returns their Future.

    A daemon thread, not a `ThreadPoolExecutor` (whose threads the interpreter joins at exit): an eval
    abandoned after an exception (see GenerationEval.on_exception) must not keep the process alive."""

    def __init__(self, name: str = "sftlab-eval") -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        future: Future[Any] = Future()
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=_loop, args=(self._jobs,), name=self.name, daemon=True)
            self._thread.start()
        self._jobs.put((future, fn))
        return future

    def shutdown(self, wait_s: float = 0.0) -> None:
        """Stop the thread after the jobs already queued; wait at most `wait_s` seconds for it."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._jobs.put(None)
        if wait_s > 0:
            thread.join(wait_s)
        # A fresh queue: a thread still busy with an abandoned job exits at the sentinel left in the old one.
        self._jobs = queue.SimpleQueue()


def _loop(jobs: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]] | None]) -> None:
    """The worker thread: run jobs from its own queue until the sentinel (None)."""
    while True:
        item = jobs.get()
        if item is None:
            return
        future, fn = item
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(fn())
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, not swallowed
            future.set_exception(exc)
