"""`sftlab eval` offline: a 2-task local suite through the HF backend on the tiny model; suite parsing and
the errors that name bad values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sftlab.cli import main as sftlab_main
from sftlab.eval.eval_cli import EvalCliError, load_suite, main
from sftlab.eval.task import EvalTask
from tests.conftest import repo_root
from tests.eval.test_registry import GPQA_ROWS, MATH_ROWS, write_jsonl


def _suite(tmp_path: Path) -> Path:
    suite = {
        "tasks": [
            {
                "class_path": "sftlab.eval.tasks.math500.Math500Task",
                "init_args": {"source": write_jsonl(tmp_path / "math.jsonl", MATH_ROWS), "n": 2},
            },
            {
                "class_path": "sftlab.eval.tasks.gpqa_diamond.GpqaDiamondTask",
                "init_args": {"source": write_jsonl(tmp_path / "gpqa.jsonl", GPQA_ROWS), "n": 1},
            },
        ]
    }
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_offline_eval_with_hf_backend(tiny_model: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    argv = ["eval", "--model", tiny_model, "--suite", str(_suite(tmp_path)), "--output", str(out)]
    assert sftlab_main([*argv, "--backend", "hf", "--max-tokens", "4", "--limit", "2"]) == 0
    math_rows = [json.loads(line) for line in (out / "math500.jsonl").read_text().splitlines()]
    gpqa_rows = [json.loads(line) for line in (out / "gpqa_diamond.jsonl").read_text().splitlines()]
    assert len(math_rows) == 4 and len(gpqa_rows) == 2  # 2 problems x n=2, 2 questions x n=1
    assert {r["sample"] for r in math_rows} == {0, 1}
    assert all(r["num_tokens"] <= 4 and "correct" in r and r["task"] == "math500" for r in math_rows)
    summary = json.loads((out / "summary.json").read_text())
    assert [(t["task"], t["group"], t["version"], t["n"], t["problems"]) for t in summary["tasks"]] == [
        ("math500", "id", 1, 4, 2),
        ("gpqa_diamond", "ood", 1, 2, 2),
    ]
    flat = summary["metrics"]
    assert flat["eval/id/accuracy"] == flat["eval/math500/accuracy"]
    assert flat["eval/ood/accuracy"] == flat["eval/gpqa_diamond/accuracy"]
    assert "eval/math500/behaviour/backtracking_rate" in flat
    table = (out / "summary.md").read_text()
    assert "| task | group | version | n | accuracy | response_tokens_mean | clip_rate |" in table
    assert "| math500 | id | 1 | 4 |" in table and "| gpqa_diamond | ood | 1 | 2 |" in table


@pytest.mark.parametrize("name", ["paper.yaml", "quick.yaml"])
def test_shipped_suites_parse(name: str) -> None:
    tasks = load_suite(repo_root() / "configs" / "eval" / name)
    assert tasks and all(isinstance(t, EvalTask) for t in tasks)
    names = {t.name for t in tasks}
    assert {"math500", "aime24", "gpqa_diamond", "mmlu_pro", "livecodebench_v2"} <= names
    if name == "paper.yaml":
        n = {t.name: t.sampling.n for t in tasks}
        assert n == {
            "math500": 3, "aime24": 10, "livecodebench_v2": 3, "gpqa_diamond": 3, "mmlu_pro": 1,
            "ifeval": 1, "halueval": 1, "truthfulqa": 1, "alpacaeval": 1, "countdown": 3,
        }  # fmt: skip
        assert {t.name: t.group for t in tasks if t.group == "general"}.keys() == {
            "ifeval",
            "halueval",
            "truthfulqa",
            "alpacaeval",
        }
        assert all(t.sampling.max_tokens >= 16384 for t in tasks)
    else:
        assert all(t.sampling.max_tokens <= 2048 and t.limit <= 20 for t in tasks)


def test_overrides_reach_every_task() -> None:
    tasks = load_suite(repo_root() / "configs" / "eval" / "paper.yaml", limit=3, max_tokens=16)
    # --limit reaches `limit`, or `num_problems` for generated tasks (Countdown)
    assert all((t.limit if hasattr(t, "limit") else t.num_problems) == 3 for t in tasks)
    assert all(t.sampling.max_tokens == 16 for t in tasks)


def test_errors_name_bad_values(tmp_path: Path) -> None:
    suite = str(_suite(tmp_path))
    with pytest.raises(EvalCliError, match="unknown backend 'tgi'; choose one of: vllm, hf"):
        main(["--model", "x/y", "--suite", suite, "--output", str(tmp_path), "--backend", "tgi"])
    with pytest.raises(EvalCliError, match="suite file .*missing.yaml does not exist"):
        load_suite(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"tasks": [{"class_path": "sftlab.eval.tasks.nope.NopeTask"}]}))
    with pytest.raises(EvalCliError, match="unknown task class 'sftlab.eval.tasks.nope.NopeTask'"):
        load_suite(bad, limit=1)
    entry = {"class_path": "sftlab.eval.tasks.math500.Math500Task", "init_args": {"n_samples": 3}}
    bad.write_text(yaml.safe_dump({"tasks": [entry]}))
    with pytest.raises(EvalCliError, match="(?s)invalid tasks: .*n_samples"):
        load_suite(bad)
    bad.write_text("tasks: 3\n")
    with pytest.raises(EvalCliError, match="top-level `tasks:` list"):
        load_suite(bad)
