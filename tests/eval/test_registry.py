"""Every registered benchmark: loads a local fixture in its hub schema, builds prompts, scores a correct and
a wrong realistic response; GPQA's shuffle is process-independent; unknown names get suggestions."""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from sftlab.data.example import PAPER_INSTRUCTION
from sftlab.eval.registry import BENCHMARKS, UnknownBenchmarkError, build_task, get_benchmark
from sftlab.eval.task import EvalTask
from sftlab.eval.tasks.gpqa_diamond import shuffled_options


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


MATH_ROWS = [
    {"problem": "What is $\\frac{1}{2} + \\frac{1}{3}$?", "answer": "\\frac{5}{6}", "unique_id": "a"},
    {"problem": "Compute $2^{10}$.", "answer": "1024", "unique_id": "b"},
]
GSM8K_ROWS = [
    {"question": "Tom has 3 boxes of 400 pens. How many pens?", "answer": "3 * 400 = 1200\n#### 1,200"},
]
GPQA_ROWS = [
    {
        "Question": "Which particle mediates the electromagnetic force?",
        "Correct Answer": "Photon",
        "Incorrect Answer 1": "Gluon",
        "Incorrect Answer 2": "W boson",
        "Incorrect Answer 3": "Graviton",
    },
    {
        "Question": "What is the spin of an electron?",
        "Correct Answer": "1/2",
        "Incorrect Answer 1": "0",
        "Incorrect Answer 2": "1",
        "Incorrect Answer 3": "3/2",
    },
]
MMLU_ROWS = [
    {
        "question_id": 70,
        "question": "Which of these is a prime number?",
        "options": ["4", "6", "8", "9", "10", "12", "14", "15", "16", "17"],
        "answer": "J",
        "answer_index": 9,
        "category": "math",
    },
    {
        "question_id": 71,
        "question": "What is 2 + 2?",
        "options": ["3", "4", "5", "6"],
        "answer": "B",
        "answer_index": 1,
        "category": "math",
    },
]


def _compressed(tests: list[dict]) -> str:
    # LiveCodeBench's private_test_cases encoding: base64(zlib(pickle(json string))).
    return base64.b64encode(zlib.compress(pickle.dumps(json.dumps(tests)))).decode()


LCB_ROWS = [
    {
        "question_title": "Sum",
        "question_content": "Read two integers a and b and print a + b.",
        "platform": "atcoder",
        "question_id": "abc001_a",
        "contest_id": "abc001",
        "contest_date": "2023-05-01T00:00:00",
        "starter_code": "",
        "difficulty": "easy",
        "public_test_cases": json.dumps([{"input": "1 2\n", "output": "3\n", "testtype": "stdin"}]),
        "private_test_cases": _compressed([{"input": "5 7\n", "output": "12\n", "testtype": "stdin"}]),
        "metadata": "{}",
    }
]

# (name, rows, init args, correct response for item 0, wrong response for item 0, expected reference 0)
CORRECT_MATH = (
    "<think>1/2 + 1/3 = 3/6 + 2/6 = 5/6. Let me check: yes.</think>\nThe sum is $\\boxed{\\frac{5}{6}}$."
)
WRONG_MATH = "<think>Add numerators and denominators: 2/5.</think>\nThe answer is $\\boxed{\\frac{2}{5}}$."
CORRECT_CODE = "<think>Easy.</think>\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
WRONG_CODE = "<think>Easy.</think>\n```python\na, b = map(int, input().split())\nprint(a - b)\n```"


def _cases(tmp_path: Path) -> list[tuple[str, dict, str, str]]:
    gpqa_gold = shuffled_options(GPQA_ROWS[0])[1]
    gpqa_wrong = next(c for c in "ABCD" if c != gpqa_gold)
    math = write_jsonl(tmp_path / "math.jsonl", MATH_ROWS)
    return [
        ("math500", {"source": math}, CORRECT_MATH, WRONG_MATH),
        ("aime24", {"source": math}, CORRECT_MATH, WRONG_MATH),
        ("aime25", {"source": math}, CORRECT_MATH, WRONG_MATH),
        (
            "gsm8k",
            {"source": write_jsonl(tmp_path / "gsm8k.jsonl", GSM8K_ROWS)},
            "<think>3 * 400 = 1200</think>\nTom has $\\boxed{1200}$ pens.",
            "<think>3 + 400 = 403</think>\nTom has $\\boxed{403}$ pens.",
        ),
        (
            "gpqa_diamond",
            {"source": write_jsonl(tmp_path / "gpqa.jsonl", GPQA_ROWS)},
            f"<think>The photon carries EM.</think>\nThe answer is \\boxed{{{gpqa_gold}}}.",
            f"<think>Gluons?</think>\nThe answer is \\boxed{{{gpqa_wrong}}}.",
        ),
        (
            "mmlu_pro",
            {"source": write_jsonl(tmp_path / "mmlu.jsonl", MMLU_ROWS)},
            "<think>17 is prime.</think>\nThe answer is \\boxed{J}.",
            "<think>9 is prime?</think>\nThe answer is \\boxed{D}.",
        ),
        (
            "livecodebench_v2",
            {"source": write_jsonl(tmp_path / "lcb.jsonl", LCB_ROWS)},
            CORRECT_CODE,
            WRONG_CODE,
        ),
    ]


def test_every_benchmark_has_a_case_and_a_version(tmp_path: Path) -> None:
    # countdown and ifeval (greedy, group general) are covered in their own test files; halueval, truthfulqa
    # and alpacaeval (judge / reward model) in test_general_tasks.py.
    own_files = {"countdown", "ifeval", "halueval", "truthfulqa", "alpacaeval"}
    assert {name for name, *_ in _cases(tmp_path)} | own_files == set(BENCHMARKS)
    for cls in BENCHMARKS.values():
        assert isinstance(cls.version, int) and cls.version >= 1


@pytest.mark.parametrize("index", range(7))
def test_benchmark_loads_prompts_and_scores(tmp_path: Path, index: int) -> None:
    name, init_args, correct, wrong = _cases(tmp_path)[index]
    task = build_task(name, max_tokens=64, **init_args)
    assert isinstance(task, EvalTask)
    assert task.name == name and task.sampling.max_tokens == 64
    assert task.sampling.temperature == (0.0 if name == "mmlu_pro" else 0.6)
    items = task.items()
    assert items and all(len(i.prompt) == 1 and i.prompt[0]["role"] == "user" for i in items)
    prompt, reference = items[0].prompt[0]["content"], items[0].reference
    if name in {"math500", "aime24", "aime25", "gsm8k"}:
        assert prompt.endswith(PAPER_INSTRUCTION) and task.group == "id"
    if name == "gsm8k":
        assert reference == "1200"
    if name == "gpqa_diamond":
        assert all(f"({c}) " in prompt for c in "ABCD") and "\\boxed{}" in prompt
        assert f"({reference}) Photon" in prompt
    if name == "mmlu_pro":
        assert "(J) 17" in prompt and reference == "J" and len(items) == 2
    if name == "livecodebench_v2":
        assert reference == {
            "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "5 7\n", "output": "12\n"}],
            "fn_name": None,
        }
    expected_n = {"math500": 3, "aime24": 10, "aime25": 10, "gpqa_diamond": 3, "livecodebench_v2": 3}
    assert task.sampling.n == expected_n.get(name, 1)
    assert task.score(correct, reference).correct is True
    assert task.score(wrong, reference).correct is False
    if hasattr(task, "score_many"):
        assert [s.correct for s in task.score_many([correct, wrong], [reference, reference])] == [True, False]


def test_limit_and_mmlu_subset(tmp_path: Path) -> None:
    math = write_jsonl(tmp_path / "math.jsonl", MATH_ROWS)
    assert len(build_task("math500", source=math, limit=1).items()) == 1
    subset = tmp_path / "ids.txt"
    subset.write_text("71\n")
    mmlu = build_task(
        "mmlu_pro", source=write_jsonl(tmp_path / "m.jsonl", MMLU_ROWS), subset_file=str(subset)
    )
    assert [i.id for i in mmlu.items()] == ["mmlu_pro:71"]


def test_functional_livecodebench_reference(tmp_path: Path) -> None:
    row = dict(
        LCB_ROWS[0],
        starter_code="class Solution:\n    def add(self, a: int, b: int) -> int:\n        ",
        public_test_cases=json.dumps([{"input": "1\n2", "output": "3", "testtype": "functional"}]),
        private_test_cases="[]",
        metadata=json.dumps({"func_name": "add"}),
    )
    task = build_task("livecodebench_v2", source=write_jsonl(tmp_path / "f.jsonl", [row]))
    item = task.items()[0]
    assert item.reference["fn_name"] == "add"
    assert "class Solution" in item.prompt[0]["content"]


def test_gpqa_shuffle_is_stable_across_processes() -> None:
    code = (
        "import json, sys; from sftlab.eval.tasks.gpqa_diamond import shuffled_options; "
        "rows = json.loads(sys.stdin.read()); print(json.dumps([shuffled_options(r) for r in rows]))"
    )
    rows = GPQA_ROWS + [dict(GPQA_ROWS[0], Question=f"Variant {i}?") for i in range(8)]
    outs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(rows),
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outs.append(json.loads(run.stdout))
    assert outs[0] == outs[1] == [list(shuffled_options(r)) for r in rows]
    # The shuffle really shuffles: the gold letter is not always A.
    assert len({gold for _, gold in outs[0]}) > 1


def test_unknown_benchmark_suggests() -> None:
    with pytest.raises(UnknownBenchmarkError, match="did you mean 'math500'") as info:
        get_benchmark("math50")
    assert "known benchmarks:" in str(info.value) and "gpqa_diamond" in str(info.value)
    with pytest.raises(UnknownBenchmarkError, match="unknown benchmark 'zzz'; known"):
        build_task("zzz")


def test_bad_rows_are_reported(tmp_path: Path) -> None:
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "x", "answer": "no final answer"}])
    with pytest.raises(ValueError, match="1 bad gsm8k row"):
        build_task("gsm8k", source=bad).items()
