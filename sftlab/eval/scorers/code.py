r"""Score LiveCodeBench-v2 code generation: run the response's last Python block against every test.

Conventions follow LiveCodeBench's `lcb_runner` (github.com/LiveCodeBench/LiveCodeBench, commit 15808c76,
`lcb_runner/evaluation/testing_util.py`) unless marked *sftlab*:

* **Extraction** (*sftlab*): the answer after the last `</think>`, then the last *closed* fenced block tagged
  python / py / python3 or untagged. LCB's `extract_code` (`lcb_runner/utils/extraction_utils.py`) takes
  the text between the last two lines containing a fence, so an odd fence count makes it return prose, and
  it takes C++ blocks too; code that exists only inside the thinking is not an answer.
* **Preamble**: LCB's `import_string` (star imports of string, re, collections, heapq, math, typing, ...
  and `sys.setrecursionlimit(50000)`) runs before the candidate, so `List[int]` or `defaultdict` without an
  import work as they do in LCB. The candidate is compiled on its own, so `from __future__` still works.
* **stdin/stdout tests** (`fn_name` null): LCB's `get_stripped_lines` strips the whole output, splits it on
  "\n" and strips every line (so trailing spaces, blank lines at either end and "\r" never matter); the
  line counts must agree and each line must be equal as a string or, failing that, as the list of its
  whitespace-separated tokens read as `Decimal`s ("1.0" == "1", "3  4" == "3 4"). `SystemExit` is a normal
  end, as in LCB's `call_method`.
* **Functional tests** (`fn_name` set): `input` holds one JSON value per line, one line per argument;
  `output` is one JSON value. The harness calls `Solution().fn_name(*args)` when the code defines a class
  `Solution`, else the top-level function, and compares the JSON round trip of the result with the
  expected value, so tuples equal lists at any depth (LCB converts only a top-level tuple). Blank input
  lines are skipped (*sftlab*: LCB would fail every answer on a stray trailing newline).
* **Verdict**: all tests must pass; the first failure stops the run, as in LCB's `grade_call_based` and
  `grade_stdio`, which also bounds the cost of wrong answers. Per-test timeout 6 s (LCB's `run_test`
  default, the paper's setting).
* *sftlab*: each test runs in a fresh sandboxed process (`sftlab.eval.sandbox`) rather than LCB's one
  process with `signal.alarm`, so no state leaks between tests and untrusted code cannot touch the host;
  stdin is real, so `sys.stdin.buffer` and `open(0)` work (LCB's patched `StringIO` lacks them), and
  interpreter start-up (~0.2 s) counts against the 6 s. Memory is capped at 1 GiB (AtCoder's limit); LCB's
  own `reliability_guard` is called without a memory limit.

`Score.error` is set only when the sandbox itself failed; a wrong, crashing or slow program is a verdict,
described in `details["first_failure"]`. This module knows nothing about backends or Lightning.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from typing import Any

from sftlab.eval.answer_extraction import strip_thinking
from sftlab.eval.sandbox import RunResult, run_program
from sftlab.eval.types import Score

LCB_TIMEOUT_S = 6.0
DEFAULT_MEMORY_MB = 1024

# Verbatim `import_string` from lcb_runner/evaluation/testing_util.py (commit 15808c76).
LCB_PREAMBLE = (
    "from string import *\nfrom re import *\nfrom datetime import *\nfrom collections import *\n"
    "from heapq import *\nfrom bisect import *\nfrom copy import *\nfrom math import *\n"
    "from random import *\nfrom statistics import *\nfrom itertools import *\nfrom functools import *\n"
    "from operator import *\nfrom io import *\nfrom sys import *\nfrom json import *\n"
    "from builtins import *\nfrom typing import *\n"
    "import string\nimport re\nimport datetime\nimport collections\nimport heapq\nimport bisect\n"
    "import copy\nimport math\nimport random\nimport statistics\nimport itertools\nimport functools\n"
    "import operator\nimport io\nimport sys\nimport json\nsys.setrecursionlimit(50000)\n"
)

_OPEN_FENCE = re.compile(r"\s*```\s*([A-Za-z0-9_+.-]*)\s*")
_PYTHON_TAGS = frozenset({"", "python", "py", "python3", "py3"})

# Runs inside the sandbox as main.py, beside solution.py and harness.json. The result of a functional
# test goes to the real stdout behind a random sentinel while the candidate's own prints go to stderr.
_HARNESS = """\
import json, sys
with open("harness.json", encoding="utf-8") as f:
    spec = json.load(f)
fn_name = spec["fn_name"]
namespace = {"__name__": "__main__" if fn_name is None else "solution", "__builtins__": __builtins__}
exec(compile(spec["preamble"], "<lcb-preamble>", "exec"), namespace)
with open("solution.py", encoding="utf-8") as f:
    code = compile(f.read(), "solution.py", "exec")
if fn_name is None:
    try:
        exec(code, namespace)
    except SystemExit:
        pass
    sys.exit(0)
args = json.loads(sys.stdin.read())
stdout, sys.stdout = sys.stdout, sys.stderr
exec(code, namespace)
solution = namespace.get("Solution")
target = getattr(solution(), fn_name, None) if isinstance(solution, type) else namespace.get(fn_name)
if not callable(target):
    sys.exit(f"the solution defines no callable {fn_name!r}")
result = target(*args)
try:
    line = json.dumps(result)
except (TypeError, ValueError) as exc:
    sys.exit(f"the result is not JSON-serialisable ({exc}): {result!r:.200}")
stdout.write(spec["sentinel"] + line + "\\n")
"""


def extract_code(response: str) -> str | None:
    """The last closed Python (or untagged) fenced block after the thinking, or None (module docstring)."""
    blocks: list[tuple[str, list[str]]] = []
    tag: str | None = None
    for line in strip_thinking(response).split("\n"):
        if tag is None:
            if match := _OPEN_FENCE.fullmatch(line):
                tag, body = match.group(1).lower(), []
        elif line.strip() == "```":
            blocks.append((tag, body))
            tag = None
        else:
            body.append(line)
    python = ["\n".join(body) for tag, body in blocks if tag in _PYTHON_TAGS and "".join(body).strip()]
    return python[-1] if python else None


def outputs_match(got: str, expected: str) -> bool:
    """LiveCodeBench's stdout comparison (`grade_stdio` + `get_stripped_lines`, see module docstring)."""
    got_lines, expected_lines = _stripped_lines(got), _stripped_lines(expected)
    if len(got_lines) != len(expected_lines):
        return False
    return all(_line_matches(a, b) for a, b in zip(got_lines, expected_lines, strict=True))


def score_code(
    response: str,
    reference: Mapping[str, Any],
    *,
    timeout_s: float = LCB_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> Score:
    """Score one response against a LiveCodeBench reference `{"tests": [{"input", "output"}], "fn_name"}`.

    A malformed reference raises ValueError (a dataset bug, never the model's fault); a response without a
    Python block scores 0 with `extracted=None`.
    """
    tests, fn_name = _parse_reference(reference)
    code = extract_code(response)
    mode = "stdio" if fn_name is None else "functional"
    if code is None:
        return Score(correct=False, extracted=None, details={"mode": mode, "reason": "no Python code block"})
    sentinel = f"@@sftlab-result-{secrets.token_hex(16)}@@"
    spec = {"fn_name": fn_name, "preamble": LCB_PREAMBLE, "sentinel": sentinel}
    files = {"solution.py": code, "harness.json": json.dumps(spec)}
    details: dict[str, Any] = {"mode": mode, "passed": 0, "total": len(tests)}
    for index, (stdin, expected) in enumerate(tests):
        cap = max(1 << 20, 2 * len(expected.encode()) + (1 << 16))  # long expected outputs must still fit
        limits = dict(timeout_s=timeout_s, memory_mb=memory_mb, max_output_bytes=cap)
        run = run_program(_HARNESS, stdin=stdin, files=files, **limits)
        details["isolation"] = list(run.isolation)
        failure = _judge(run, expected, fn_name is not None, sentinel)
        if failure is not None:
            details["first_failure"] = {"test": index, **failure}
            return Score(correct=False, extracted=code, error=run.error, details=details)
        details["passed"] = index + 1
    return Score(correct=True, extracted=code, details=details)


def score_code_many(
    responses: Sequence[str],
    references: Sequence[Mapping[str, Any]],
    *,
    max_workers: int | None = None,
    timeout_s: float = LCB_TIMEOUT_S,
    memory_mb: int = DEFAULT_MEMORY_MB,
) -> list[Score]:
    """`score_code` over pairs, at most `max_workers` sandboxes at once, results in input order.

    The default is one worker per usable CPU: the timeout is wall clock, so running more programs than
    cores would turn CPU contention into spurious timeouts.
    """
    if len(responses) != len(references):
        counts = f"{len(responses)} responses and {len(references)} references"
        raise ValueError(f"need one reference per response, got {counts}")
    workers = max_workers if max_workers is not None else len(os.sched_getaffinity(0))
    if workers < 1:
        raise ValueError(f"max_workers must be >= 1, got max_workers={max_workers}")
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sftlab-code") as pool:
        futures = [
            pool.submit(score_code, response, reference, timeout_s=timeout_s, memory_mb=memory_mb)
            for response, reference in zip(responses, references, strict=True)
        ]
        return [future.result() for future in futures]


def _judge(run: RunResult, expected: str, functional: bool, sentinel: str) -> dict[str, Any] | None:
    """None when the test passed, else what went wrong (status + evidence, truncated)."""
    evidence = {
        "returncode": run.returncode,
        "stderr_tail": run.stderr[-500:],
        "wall_s": round(run.wall_s, 3),
    }
    if run.status != "ok":
        status = "runtime_error" if run.status == "error" else run.status
        return {"status": status, **evidence, **({"error": run.error} if run.error else {})}
    if functional:
        lines = [line for line in run.stdout.splitlines() if line.startswith(sentinel)]
        got = lines[-1][len(sentinel) :] if lines else ""
        if lines and json.loads(got) == json.loads(expected):
            return None
    elif outputs_match(got := run.stdout, expected):
        return None
    return {"status": "wrong_answer", "got": got[:200], "expected": expected[:200], **evidence}


def _parse_reference(reference: Mapping[str, Any]) -> tuple[list[tuple[str, str]], str | None]:
    """Validate a reference and return (stdin, expected) pairs; functional inputs become a JSON args list."""
    problems = []
    tests, fn_name = reference.get("tests"), reference.get("fn_name")
    if fn_name is not None and not (isinstance(fn_name, str) and fn_name.isidentifier()):
        problems.append(f"fn_name must be null or a Python identifier, got fn_name={fn_name!r}")
    if not isinstance(tests, Sequence) or isinstance(tests, str) or not tests:
        problems.append(
            f"tests must be a non-empty list of {{'input': str, 'output': str}}, got {tests!r:.80}"
        )
        tests = []
    pairs = []
    for i, test in enumerate(tests):
        if not (isinstance(test, Mapping) and all(isinstance(test.get(k), str) for k in ("input", "output"))):
            problems.append(f"tests[{i}] must have str 'input' and 'output', got {test!r:.80}")
            continue
        if fn_name is None:
            pairs.append((test["input"], test["output"]))
            continue
        try:  # one JSON value per argument line; blank lines skipped (module docstring)
            args = [json.loads(line) for line in test["input"].split("\n") if line.strip()]
            pairs.append((json.dumps(args), json.dumps(json.loads(test["output"]))))
        except ValueError as exc:
            problems.append(
                f"tests[{i}] of a functional problem must hold JSON input lines and output: {exc}"
            )
    if problems:
        raise ValueError("invalid LiveCodeBench reference: " + "; ".join(problems))
    return pairs, fn_name


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _line_matches(got: str, expected: str) -> bool:
    """Equal as strings, or as lists of Decimals when both lines parse (LCB's CASE 1 and CASE 2)."""
    if got == expected:
        return True
    try:
        return [Decimal(token) for token in got.split()] == [Decimal(token) for token in expected.split()]
    except InvalidOperation:  # a token is not a number, or a signalling NaN refused comparison
        return False
