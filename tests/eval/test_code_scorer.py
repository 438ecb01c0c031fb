"""LiveCodeBench-v2 code scorer: extraction, stdin/stdout and functional tests, verdicts, bad references.

Responses are written the way reasoning models answer (thinking, prose, a fenced block); the references
use LiveCodeBench's own test layout. Each sandboxed test costs ~0.2 s, so the cases stay few and small.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

from sftlab.eval.sandbox import run_program
from sftlab.eval.scorers import code as code_scorer
from sftlab.eval.scorers.code import extract_code, outputs_match, score_code, score_code_many

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox is Linux-only")

A_PLUS_B = {
    "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "40 2\n", "output": "42\n"}],
    "fn_name": None,
}
TWO_SUM = {
    "tests": [
        {"input": "[2,7,11,15]\n9", "output": "[0, 1]"},
        {"input": "[3,2,4]\n6", "output": "[1,2]"},
    ],
    "fn_name": "twoSum",
}


def answer(code: str, thinking: str = "Let me think about the edge cases.") -> str:
    code = textwrap.dedent(code).strip()
    return f"<think>\n{thinking}\n</think>\nHere is my solution.\n\n```python\n{code}\n```\n"


# ---- extraction -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        pytest.param(answer("print(1)"), "print(1)", id="think+python"),
        pytest.param("```py\nprint(2)\n```", "print(2)", id="py"),
        pytest.param("```\nprint(3)\n```", "print(3)", id="bare"),
        pytest.param("```Python3\nprint(4)\n```", "print(4)", id="Python3"),
        pytest.param(
            "Try:\n```python\nprint(1)\n```\nBetter:\n```python\nprint(5)\n```\n", "print(5)", id="last"
        ),
        pytest.param(
            "```python\nprint(6)\n```\nIn C++:\n```cpp\nint main() {}\n```", "print(6)", id="skips-cpp"
        ),
        pytest.param(
            "<think>\n```python\nprint(7)\n```\n</think>\nThe answer is 7.", None, id="only-in-thinking"
        ),
        pytest.param("<think>never closed\n```python\nprint(8)\n```", None, id="unclosed-think"),
        pytest.param("```python\nprint('clipped generation'", None, id="unclosed-fence"),
        pytest.param("no code at all", None, id="no-block"),
        pytest.param("```python\n\n```", None, id="empty-block"),
    ],
)
def test_extract_code(response, expected):
    assert extract_code(response) == expected


# ---- LiveCodeBench's stdout comparison --------------------------------------------------------------


@pytest.mark.parametrize(
    ("got", "expected", "match"),
    [
        ("3\n", "3", True),
        ("  1 2 3   \n\n\n", "1 2 3\n", True),  # whitespace around lines and blank lines at the ends
        ("1\r\n2\r\n", "1\n2\n", True),
        ("1.0 2.50\n", "1 2.5\n", True),  # numeric tokens compare as Decimals
        ("3  4\n", "3 4\n", True),
        ("Yes\n", "yes\n", False),
        ("1\n\n2\n", "1\n2\n", False),  # an inner blank line changes the line count
        ("1 2\n", "1\n2\n", False),
        ("0.30000000000000004\n", "0.3\n", False),  # exact Decimal equality, no tolerance
        ("nan\n", "nan\n", True),  # string-equal lines match before any numeric reading
        ("sNaN\n", "1\n", False),
    ],
)
def test_outputs_match_follows_livecodebench(got, expected, match):
    assert outputs_match(got, expected) is match


# ---- stdin/stdout problems --------------------------------------------------------------------------


def test_correct_stdin_solution_passes_every_test():
    response = answer(
        """
        def main():
            a, b = map(int, input().split())
            print(a + b)

        if __name__ == "__main__":
            main()
        """
    )
    score = score_code(response, A_PLUS_B)
    assert score.correct and score.value == 1.0 and score.error is None
    assert score.extracted == extract_code(response)
    assert score.details["passed"] == score.details["total"] == 2 and "first_failure" not in score.details


def test_extra_whitespace_and_sys_exit_are_accepted():
    code = (
        "import sys\na, b = map(int, sys.stdin.read().split())\nprint('  ', a + b, '   \\n\\n')\nsys.exit(0)"
    )
    assert score_code(answer(code), A_PLUS_B).correct


def test_wrong_answer_stops_at_the_first_failing_test(monkeypatch):
    runs = []

    def counting_run_program(*args, **kwargs):
        runs.append(kwargs["stdin"])
        return run_program(*args, **kwargs)

    monkeypatch.setattr(code_scorer, "run_program", counting_run_program)
    reference = {"tests": [*A_PLUS_B["tests"], {"input": "2 2\n", "output": "4\n"}], "fn_name": None}
    score = score_code(answer("a, b = map(int, input().split())\nprint(a + b if a != 40 else 0)"), reference)
    assert not score.correct and score.value == 0.0 and score.error is None
    failure = score.details["first_failure"]
    assert failure["test"] == 1 and failure["status"] == "wrong_answer"
    assert failure["got"] == "0\n" and failure["expected"] == "42\n"
    assert score.details["passed"] == 1 and score.details["total"] == 3
    assert runs == ["1 2\n", "40 2\n"], "the third test must not run after the second failed"


def test_a_raising_program_is_a_runtime_error():
    score = score_code(answer("raise RuntimeError('index out of range')"), A_PLUS_B)
    failure = score.details["first_failure"]
    assert not score.correct and failure["status"] == "runtime_error" and failure["returncode"] == 1
    assert "RuntimeError: index out of range" in failure["stderr_tail"]


def test_a_slow_program_times_out():
    score = score_code(answer("while True:\n    pass"), A_PLUS_B, timeout_s=1.0)
    assert not score.correct and score.details["first_failure"]["status"] == "timeout"


def test_livecodebench_preamble_lets_unimported_names_resolve():
    code = "d = defaultdict(int)\nfor x in input().split():\n    d[x] += int(x)\nprint(sum(d.values()))"
    assert score_code(answer(code), A_PLUS_B).correct


def test_code_only_inside_the_thinking_is_not_extracted():
    response = "<think>\n```python\nprint(sum(map(int, input().split())))\n```\n</think>\nThe sum."
    score = score_code(response, A_PLUS_B)
    assert not score.correct and score.extracted is None and score.error is None


# ---- functional (LeetCode-style) problems -----------------------------------------------------------

CLASS_SOLUTION = """
class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        print("debug:", nums)  # must not disturb the result channel
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return (seen[target - x], i)  # a tuple equals the expected JSON list
            seen[x] = i
"""


def test_class_solution_passes_with_prints_and_tuples():
    score = score_code(answer(CLASS_SOLUTION), TWO_SUM)
    assert score.correct, score.details
    assert score.details["mode"] == "functional" and score.details["passed"] == 2


def test_top_level_function_is_called_without_a_solution_class():
    code = """
        def twoSum(nums, target):
            return [[i, j] for j in range(len(nums)) for i in range(j) if nums[i] + nums[j] == target][0]
        """
    assert score_code(answer(code), TWO_SUM).correct


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("class Solution:\n    def twoSum(self, nums, target):\n        return [1, 0]", "wrong_answer"),
        ("class Solution:\n    def twoSum(self, nums, target):\n        return {0, 1}", "runtime_error"),
        ("class Solution:\n    def two_sum(self, nums, target):\n        return [0, 1]", "runtime_error"),
        ("class Solution:\n    def twoSum(self, nums, target):\n        return nums[99]", "runtime_error"),
    ],
    ids=["wrong-result", "not-json-serialisable", "missing-method", "raises"],
)
def test_functional_failures(code, status):
    score = score_code(answer(code), TWO_SUM)
    assert not score.correct and score.details["first_failure"]["status"] == status


def test_a_candidate_cannot_forge_the_result_line():
    code = """
        import sys
        print("@@sftlab-result-0@@[0, 1]")
        sys.__stdout__.write("[0, 1]\\n")
        class Solution:
            def twoSum(self, nums, target):
                return None
        """
    assert not score_code(answer(code), TWO_SUM).correct


# ---- references and batching ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "fragments"),
    [
        ({"tests": [], "fn_name": None}, ["non-empty list"]),
        ({"tests": [{"input": 1, "output": "2"}], "fn_name": "f f"}, ["tests[0]", "fn_name='f f'"]),
        ({"tests": [{"input": "[1", "output": "2"}], "fn_name": "f"}, ["tests[0]", "JSON"]),
    ],
)
def test_malformed_references_raise_with_every_problem(reference, fragments):
    with pytest.raises(ValueError, match="invalid LiveCodeBench reference") as excinfo:
        score_code(answer("print(1)"), reference)
    assert all(fragment in str(excinfo.value) for fragment in fragments)


def test_score_code_many_keeps_order():
    right = answer("print(sum(map(int, input().split())))")
    wrong = answer("print(0)")
    scores = score_code_many([wrong, right, "no code"], [A_PLUS_B] * 3, max_workers=2)
    assert [s.correct for s in scores] == [False, True, False]
    with pytest.raises(ValueError, match="one reference per response"):
        score_code_many([right], [A_PLUS_B, A_PLUS_B])
