r"""Check math answers with math-verify, in a pool of worker processes with a hard per-item timeout.

**What math-verify does** (github.com/huggingface/Math-Verify, the package pinned in pyproject; read at
0.9.0, `math_verify/parser.py` and `grader.py`). `parse(text)` finds the answer in free text and turns it
into SymPy: with the default `LatexExtractionConfig()` + `ExprExtractionConfig()` it tries, by priority,
"final answer is ..." anchors, `\boxed{}` and LaTeX environments (`$...$`, `\[...\]`), then plain numbers
and expressions, rightmost match first; it normalises LaTeX (units, `\dfrac`, `^\circ`, `\text{}`) and
returns `[sympy_value, matched_string]` (the string is a fallback for what SymPy cannot read).
`verify(gold, target)` -- **gold first**: it is not symmetric (its docstring: assignment simplification and
equation-to-interval conversion treat the sides differently) -- is true when any pair matches as strings,
numerically (rounded to 6 decimals: `1/3` == `0.333333`, but `1/3` != `0.33`), symbolically
(`2\sqrt{2}` == `\sqrt{8}`), or as sets, intervals, tuples, matrices or relations. The README recommends
wrapping a gold answer in `$...$` or `\boxed{}` so it is read as LaTeX; a bare gold string is boxed here.

**Conventions** (the paper's, arXiv 2604.06628 section 3, via `answer_extraction`): thinking is stripped
first (text up to the last `</think>`; an unclosed `<think>` leaves no answer). The prediction is the last
`\boxed{}` of the answer part; without one, math-verify's own extraction runs on the answer part. An empty
box is no answer. `VerifyOutcome.extracted` is the box content as written, else math-verify's string.

**Why processes.** math-verify enforces its timeouts with `signal.alarm`, which works only in a main
thread, and a signal cannot stop C code (a huge integer power) at all. So each item runs in a worker of a
`ProcessPoolExecutor` (spawn context: the caller may be a multi-threaded trainer, where fork is unsafe),
with math-verify's own timeouts off and two limits of ours:

* *soft*: in the worker (its main thread) an interval timer raises after `timeout_s`; the item is a
  `timeout` and the worker lives on. This is what stops SymPy grinding on `10^{10^{10}}`.
* *hard*: the parent gives each item `timeout_s + HARD_GRACE_S` from the moment a worker started it (the
  workers write (item id, start time) to a shared board, so queueing and interpreter start-up never count).
  An item past that is a `timeout`, the pool's workers are killed (a stuck worker cannot be cancelled) and
  the items that were in flight beside it run again on a fresh pool, at no cost to their attempts.

A worker's first item is preceded, outside its clock, by the math-verify import and a warm-up over one
comparison of each kind (lazy ANTLR and SymPy loading costs up to ~2 s on a busy CPU). Workers cap their
address space (`WORKER_MEMORY_MB`) and exit when the parent dies. The pool persists per process and worker
count and is rebuilt lazily after a kill, so `verify_answer` costs one round trip once warm; a pool whose
worker died on its own (OOM killer) is rebuilt too, and an item that loses its pool `_MAX_ATTEMPTS` times
is an `error`. Workers are spawned, so they import the parent's `__main__` again (multiprocessing's rule):
entry points keep heavy work under `if __name__ == "__main__"`. This module knows nothing about tasks,
backends or Lightning.
"""

from __future__ import annotations

import importlib
import importlib.util
import itertools
import logging
import multiprocessing
import os
import resource
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from sftlab.eval.answer_extraction import last_boxed, strip_thinking

Status = Literal["correct", "wrong", "no_answer", "timeout", "error"]

DEFAULT_VERIFIER = "sftlab.eval.math_verify:check_answer"
HARD_GRACE_S = 2.0  # how long past timeout_s the parent waits for the soft limit before killing workers
MAX_DEFAULT_WORKERS = 8  # each worker holds SymPy (~200 MB); pass max_workers for more
WORKER_MEMORY_MB = 4096  # address-space cap per worker: a runaway SymPy expansion fails, not the host
_START_TIMEOUT_S = 300.0  # an item no worker picked up for this long means the pool is wedged
_MAX_ATTEMPTS = 3  # an item whose pool broke under it this many times is an error
_POLL_S = 0.05
# Items queued per worker: >1 keeps a worker busy while the parent resubmits. Deadlines count from the
# board's start time, so waiting in the queue never eats an item's budget.
_IN_FLIGHT_PER_WORKER = 2


@dataclass(frozen=True)
class VerifyOutcome:
    """The verdict on one (gold, response) pair; `error` says what went wrong for timeout/error."""

    status: Status
    extracted: str | None
    error: str | None = None

    @property
    def correct(self) -> bool:
        return self.status == "correct"


def verify_answers(
    pairs: Sequence[tuple[str, str]],
    *,
    timeout_s: float = 5.0,
    max_workers: int | None = None,
    verifier: str = DEFAULT_VERIFIER,
) -> list[VerifyOutcome]:
    """Verify (gold_answer, response_text) pairs in the worker pool; outcomes in input order.

    `timeout_s`: per item, from when a worker starts it. `max_workers`: default one per usable CPU, at
    most `MAX_DEFAULT_WORKERS`. `verifier`: "module:function" the worker calls as `fn(gold, answer_part)
    -> VerifyOutcome` (default `check_answer`); tests inject a hanging one here.
    """
    workers = (
        max_workers if max_workers is not None else min(len(os.sched_getaffinity(0)), MAX_DEFAULT_WORKERS)
    )
    problems = []
    if not timeout_s > 0:
        problems.append(f"timeout_s must be > 0, got timeout_s={timeout_s}")
    if workers < 1:
        problems.append(f"max_workers must be >= 1, got max_workers={max_workers}")
    if verifier.count(":") != 1:
        problems.append(f"verifier must be 'module:function', got verifier={verifier!r}")
    bad = [i for i, pair in enumerate(pairs) if not _is_pair(pair)]
    if bad:
        problems.append(f"every pair must be (gold: str, response: str); pairs {bad[:10]} are not")
    if problems:
        raise ValueError("invalid verify_answers arguments: " + "; ".join(problems))
    if verifier == DEFAULT_VERIFIER and importlib.util.find_spec("math_verify") is None:
        raise ImportError("math verification needs math-verify: pip install 'math-verify[antlr4_13_2]'")
    answers = [strip_thinking(response) for _, response in pairs]
    outcomes: list[VerifyOutcome | None] = [
        VerifyOutcome("no_answer", None) if not answer.strip() else None for answer in answers
    ]
    todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
    if todo:
        batch = _Batch(
            _pool(workers), verifier, timeout_s, [pairs[i][0] for i in todo], [answers[i] for i in todo]
        )
        for i, outcome in zip(todo, batch.run(), strict=True):
            outcomes[i] = outcome
    return outcomes  # type: ignore[return-value]


def _is_pair(pair: object) -> bool:
    return isinstance(pair, (tuple, list)) and len(pair) == 2 and all(isinstance(s, str) for s in pair)


def verify_answer(
    gold: str, response: str, *, timeout_s: float = 5.0, verifier: str = DEFAULT_VERIFIER
) -> VerifyOutcome:
    """One pair, through the same pool as `verify_answers`."""
    return verify_answers([(gold, response)], timeout_s=timeout_s, verifier=verifier)[0]


# ---- runs in the worker processes -------------------------------------------------------------------


def check_answer(gold: str, answer: str) -> VerifyOutcome:
    r"""The default verifier: math-verify on the answer part (module docstring). Runs in a worker."""
    from math_verify import parse, verify

    gold_parsed = _parse_gold(gold)
    if not gold_parsed:
        return VerifyOutcome("error", None, error=f"math-verify cannot read the gold answer {gold!r:.200}")
    boxed = last_boxed(answer)
    if boxed is not None:
        if not boxed.strip():
            return VerifyOutcome("no_answer", None)
        extracted: str | None = boxed
        predicted = parse("\\boxed{" + boxed + "}", parsing_timeout=None)
    else:
        predicted = parse(answer, parsing_timeout=None)
        strings = [p for p in predicted if isinstance(p, str)]
        extracted = strings[-1] if strings else (str(predicted[0]) if predicted else None)
    if not predicted:
        return VerifyOutcome("no_answer", extracted)
    correct = verify(gold_parsed, predicted, timeout_seconds=None)
    return VerifyOutcome("correct" if correct else "wrong", extracted)


@lru_cache(maxsize=4096)  # avg@n scores each gold answer n times
def _parse_gold(gold: str) -> list:
    from math_verify import parse

    text = gold.strip()
    delimited = (text.startswith("$") and text.endswith("$")) or "\\boxed" in text
    return parse(text if delimited else "\\boxed{" + text + "}", parsing_timeout=None)


class _SoftTimeout(BaseException):
    """BaseException so that math-verify's `except Exception` handlers cannot swallow it."""


_SLOT: int | None = None
_BOARD = None


def _init_worker(board, slots, parent_pid: int) -> None:
    global _SLOT, _BOARD
    with slots.get_lock():
        _SLOT, slots.value = slots.value, slots.value + 1
    _BOARD = board
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    cap = WORKER_MEMORY_MB << 20 if hard == resource.RLIM_INFINITY else min(WORKER_MEMORY_MB << 20, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    # Our timeouts replace math-verify's; its "timeout is disabled" warning would only be noise.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    # A killed parent leaves the workers blocked on a queue that never closes; do not linger as orphans.
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)


def _on_alarm(signum, frame) -> None:
    raise _SoftTimeout


# One of each kind of comparison: the first of each pays lazy imports (the ANTLR LaTeX parser, SymPy's
# simplify, sets, intervals) worth 0.2-1.7 s apiece on a busy CPU, which must not count against an item.
_WARM_UP = [
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("[2, 5)", "x \\in [2,5)"),
    ("\\{1,2,3\\}", "\\{3,2,1\\}"),
    ("x^2+2x+1", "(x+1)^2"),
    ("\\frac{1}{2}", "0.5"),
    ("(3, \\frac{\\pi}{2})", "(3, \\pi/2)"),
]


@lru_cache(maxsize=8)
def _resolve(path: str) -> Callable[[str, str], VerifyOutcome]:
    """Import a verifier once per worker; the default one is warmed up too (outside any item's clock)."""
    module, _, name = path.partition(":")
    fn = getattr(importlib.import_module(module), name)
    if path == DEFAULT_VERIFIER:
        for gold, answer in _WARM_UP:
            fn(gold, f"\\boxed{{{answer}}}")
    return fn


def _run_item(verifier: str, item_id: int, gold: str, answer: str, timeout_s: float) -> VerifyOutcome:
    """Worker side of one item: post its start on the board, run the verifier under the soft limit."""
    try:
        fn = _resolve(verifier)  # before the clock: an import cut short by the alarm would stay broken
    except Exception as exc:
        return VerifyOutcome("error", None, error=f"cannot load verifier {verifier!r}: {exc}")
    slot, board = _SLOT, _BOARD
    if slot is not None and board is not None and 2 * slot + 1 < len(board):
        board[2 * slot + 1] = time.monotonic()  # time before id: the parent reads id, then time
        board[2 * slot] = item_id
    signal.signal(signal.SIGALRM, _on_alarm)
    try:
        try:
            signal.setitimer(signal.ITIMER_REAL, timeout_s)
            return fn(gold, answer)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
    except _SoftTimeout:
        return VerifyOutcome("timeout", None, error=f"no verdict within {timeout_s} s")
    except Exception as exc:
        return VerifyOutcome("error", None, error=f"verifier failed: {type(exc).__name__}: {exc}"[:500])
    finally:
        if slot is not None and board is not None and 2 * slot < len(board):
            board[2 * slot] = 0


# ---- the parent side: pool lifecycle and scheduling --------------------------------------------------


class _Pool:
    """One `ProcessPoolExecutor` and its start board; `generation` counts rebuilds after a kill."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.generation = 0
        self._lock = threading.Lock()
        self._executor: ProcessPoolExecutor | None = None
        self._board = None

    def submit(self, *args) -> tuple[int, Future]:
        with self._lock:
            if self._executor is not None:
                try:
                    return self.generation, self._executor.submit(_run_item, *args)
                except BrokenProcessPool:  # a worker died on its own (OOM killer, segfault): start afresh
                    self._executor.shutdown(wait=False, cancel_futures=True)
                    self.generation += 1
            ctx = multiprocessing.get_context("spawn")
            # (item id, start time) per worker; lock-free: a worker killed mid-write cannot wedge it.
            self._board = ctx.RawArray("d", 2 * self.workers)
            initargs = (self._board, ctx.Value("i", 0), os.getpid())
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=ctx, initializer=_init_worker, initargs=initargs
            )
            return self.generation, self._executor.submit(_run_item, *args)

    def start_times(self) -> dict[int, float]:
        board = self._board
        if board is None:
            return {}
        values = board[:]
        return {int(values[i]): values[i + 1] for i in range(0, len(values), 2) if values[i] > 0}

    def kill(self, generation: int) -> None:
        """Kill the workers of `generation` (no-op once that pool is gone); the next submit rebuilds it."""
        with self._lock:
            if generation != self.generation or self._executor is None:
                return
            executor, self._executor, self._board = self._executor, None, None
            self.generation += 1
        kill_workers = getattr(executor, "kill_workers", None)  # public from Python 3.14
        if kill_workers is not None:
            kill_workers()
        else:
            for process in list(getattr(executor, "_processes", {}).values()):
                process.kill()
        executor.shutdown(wait=False, cancel_futures=True)


_POOLS: dict[int, _Pool] = {}
_POOLS_LOCK = threading.Lock()
_ITEM_IDS = itertools.count(1)


def _pool(workers: int) -> _Pool:
    with _POOLS_LOCK:
        if workers not in _POOLS:
            _POOLS[workers] = _Pool(workers)
        return _POOLS[workers]


def _forget_pools_after_fork() -> None:
    # A forked child must not use its parent's executors (their threads did not survive the fork).
    global _POOLS_LOCK
    _POOLS.clear()
    _POOLS_LOCK = threading.Lock()


os.register_at_fork(after_in_child=_forget_pools_after_fork)


@dataclass
class _InFlight:
    index: int
    item_id: int
    generation: int
    submitted: float


class _Batch:
    """Schedule one call's items: a few per worker in flight, each watched against its hard deadline."""

    def __init__(self, pool: _Pool, verifier: str, timeout_s: float, golds: list[str], answers: list[str]):
        self.pool, self.verifier, self.timeout_s = pool, verifier, timeout_s
        self.golds, self.answers = golds, answers
        self.outcomes: list[VerifyOutcome | None] = [None] * len(golds)
        self.attempts = [0] * len(golds)
        self.queue = deque(range(len(golds)))
        self.inflight: dict[Future, _InFlight] = {}

    def run(self) -> list[VerifyOutcome]:
        try:
            while self.queue or self.inflight:
                while self.queue and len(self.inflight) < self.pool.workers * _IN_FLIGHT_PER_WORKER:
                    i = self.queue.popleft()
                    item_id, submitted = next(_ITEM_IDS), time.monotonic()
                    args = (self.verifier, item_id, self.golds[i], self.answers[i], self.timeout_s)
                    generation, future = self.pool.submit(*args)
                    self.inflight[future] = _InFlight(i, item_id, generation, submitted)
                done, _ = wait(list(self.inflight), timeout=_POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    self._collect(future, self.inflight.pop(future))
                self._enforce_deadlines()
        except BaseException:
            # Ctrl-C (or a bug) with items in flight: a stuck worker would hang the interpreter's exit,
            # which joins every pool worker, so kill the pools still working for us.
            for generation in {item.generation for item in self.inflight.values()}:
                self.pool.kill(generation)
            raise
        return self.outcomes  # type: ignore[return-value]

    def _collect(self, future: Future, item: _InFlight) -> None:
        try:
            outcome = future.result()
        except Exception as exc:  # BrokenProcessPool, CancelledError: the pool died under this item
            self.attempts[item.index] += 1
            if self.attempts[item.index] < _MAX_ATTEMPTS:
                self.queue.appendleft(item.index)
                return
            outcome = VerifyOutcome("error", None, error=f"the verifier process died: {type(exc).__name__}")
        self._finish(item.index, outcome)

    def _finish(self, index: int, outcome: VerifyOutcome) -> None:
        if outcome.status in ("timeout", "error") and outcome.extracted is None:
            outcome = VerifyOutcome(outcome.status, last_boxed(self.answers[index]), outcome.error)
        self.outcomes[index] = outcome

    def _enforce_deadlines(self) -> None:
        now, started = time.monotonic(), self.pool.start_times()
        for future, item in list(self.inflight.items()):
            if future.done():
                continue
            start = started.get(item.item_id)
            if start is not None and start >= item.submitted:  # earlier would be a torn read of the board
                if now - start <= self.timeout_s + HARD_GRACE_S:
                    continue
                error = f"no verdict within {self.timeout_s} s; the worker was killed"
                outcome = VerifyOutcome("timeout", None, error=error)
            elif now - item.submitted > _START_TIMEOUT_S:
                error = f"no worker started the item within {_START_TIMEOUT_S} s; the pool was restarted"
                outcome = VerifyOutcome("error", None, error=error)
            else:
                continue
            self.inflight.pop(future)
            self._finish(item.index, outcome)
            self._kill(item.generation)

    def _kill(self, generation: int) -> None:
        """Kill the pool of `generation` and run its other in-flight items again, free of charge."""
        self.pool.kill(generation)
        for future, item in list(self.inflight.items()):
            if item.generation == generation:
                self.inflight.pop(future)
                self.queue.appendleft(item.index)
