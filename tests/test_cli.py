"""The command line: help, config parsing, `sftlab score`, and a small fit through the real CLI."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from sftlab.cli import build_cli, main
from tests.conftest import repo_root

CONFIGS = sorted(p for p in (repo_root() / "configs").rglob("*.yaml"))


def test_help_lists_every_subcommand() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sftlab", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("fit", "validate", "score", "regime"):
        assert f"  {command} " in out.stdout


def test_unknown_command_suggests(capsys) -> None:
    assert main(["fitt"]) == 2
    assert "Did you mean fit" in capsys.readouterr().err


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(repo_root())))
def test_every_shipped_config_parses(config: Path, tmp_path) -> None:
    if config.parent.name == "eval":  # eval suites are `sftlab eval --suite` files, not run configs
        from sftlab.eval.eval_cli import load_suite

        assert load_suite(config)
        return
    if "deepspeed" in config.name and importlib.util.find_spec("deepspeed") is None:
        pytest.skip(
            "DeepSpeedStrategy cannot be constructed without the deepspeed package (pip install deepspeed)"
        )
    args = ["--config", str(config)]
    if config.parent.name == "trainer":  # strategy presets are composed after a run config
        args = ["--config", str(repo_root() / "configs/quickstart.yaml"), *args]
    if "fsdp" in config.name and not torch.cuda.is_available():
        # Lightning refuses FSDP on a CPU when it builds the Trainer: validate the whole config (types,
        # class paths, init args) without instantiating, then construct the strategy itself.
        out = io.StringIO()
        with pytest.raises(SystemExit) as exited, contextlib.redirect_stdout(out):
            build_cli([*args, "--trainer.logger=false", "--print_config"], run=False)
        assert exited.value.code in (0, None)
        assert yaml.safe_load(out.getvalue())["trainer"]["precision"] == "bf16-mixed"
        strategy = yaml.safe_load(config.read_text())["trainer"]["strategy"]
        init = dict(strategy["init_args"])
        for key in ("auto_wrap_policy", "activation_checkpointing_policy"):
            module, _, name = init[key].rpartition(".")
            init[key] = getattr(importlib.import_module(module), name)
        from lightning.pytorch.strategies import FSDPStrategy

        assert strategy["class_path"] == "lightning.pytorch.strategies.FSDPStrategy"
        FSDPStrategy(**init)
        return
    # run=False: LightningCLI parses and instantiates without subcommands.
    cli = build_cli([*args, "--trainer.logger=false"], run=False)
    assert cli.model is not None and cli.datamodule is not None
    if config.parent.name == "trainer":
        assert cli.trainer.precision == "bf16-mixed"


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ([], "SFTLabProgressBar"),
        (["--trainer.enable_progress_bar=false"], None),
        (["--trainer.callbacks+=lightning.pytorch.callbacks.RichProgressBar"], "RichProgressBar"),
    ],
)
def test_sftlab_progress_bar_is_the_default(extra: list[str], expected: str | None) -> None:
    config = str(repo_root() / "configs/quickstart.yaml")
    cli = build_cli(["--config", config, "--trainer.logger=false", *extra], run=False)
    bar = cli.trainer.progress_bar_callback
    assert (type(bar).__name__ if bar is not None else None) == expected


def test_a_config_typo_is_reported(capsys) -> None:
    with pytest.raises(SystemExit):
        build_cli(
            ["fit", "--config", str(repo_root() / "configs/quickstart.yaml"), "--model.learnig_rate=1"],
            run=False,
        )
    assert "learnig_rate" in capsys.readouterr().err


def test_an_unknown_model_lists_the_builtins() -> None:
    with pytest.raises(ValueError, match="unknown model 'smollm3'.*Built-in models: smollm2-135m-instruct"):
        from sftlab.models import resolve_model

        resolve_model("smollm3")


def test_score_command(tmp_path) -> None:
    rows = [
        {
            "task": "countdown",
            "reference": {"numbers": [3, 7, 12, 2], "target": 50},
            "response": "<think>..</think>\\boxed{12*3+7*2}",
        },
        {
            "task": "countdown",
            "reference": {"numbers": [3, 7, 12, 2], "target": 50},
            "response": "\\boxed{12*3+7+2}",
        },
        {"task": "countdown", "reference": {"numbers": [1, 2, 3], "target": 6}, "response": "no box"},
    ]
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", "--input", str(src), "--output", str(dst)]) == 0
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["correct"] for o in out] == [True, False, False]
    assert out[0]["extracted"] == "12*3+7*2" and out[2]["extracted"] is None
    assert all(o["response"] == r["response"] for o, r in zip(out, rows, strict=True))


def test_score_command_names_bad_rows(tmp_path, capsys) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text(
        '{"task": "countdown", "reference": {}, "response": "x"}\n{"task": "countdwn", "reference": 1, "response": "x"}\nnot json\n{"task": "countdown"}\n'
    )
    assert main(["score", "--input", str(src), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "in.jsonl:2" in err and "Did you mean countdown" in err
    assert "in.jsonl:3: invalid JSON" in err and "in.jsonl:4: missing reference, response" in err
    assert not (tmp_path / "o.jsonl").exists()


def test_fit_through_the_cli_logs_eval_metrics(tiny_model: str, tmp_path) -> None:
    config = yaml.safe_load((repo_root() / "configs/quickstart.yaml").read_text())
    config["trainer"]["max_steps"] = 2
    config["trainer"]["logger"]["init_args"] = {"repo": str(tmp_path / "runs"), "run_name": "smoke"}
    callback = config["trainer"]["callbacks"][0]["init_args"]
    callback["every_n_steps"] = 1
    callback["tasks"][0]["init_args"].update(num_problems=4, max_tokens=16)
    callback["backend"] = {"class_path": "sftlab.eval.backends.hf_backend.HFBackend"}
    config["model"]["model_name"] = tiny_model
    config["data"]["regime"]["init_args"]["train_size"] = 16
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["fit", "--config", str(path)]) == 0
    run_dir = tmp_path / "runs" / "outputs" / "smoke"
    assert (run_dir / "config.yaml").is_file()
    steps = sorted(p.name for p in (run_dir / "eval").iterdir())
    assert steps == ["step_000000", "step_000001", "step_000002"]
    records = [
        json.loads(line) for line in (run_dir / "eval/step_000002/countdown.jsonl").read_text().splitlines()
    ]
    assert len(records) == 4 and {"response", "correct", "extracted", "num_tokens"} <= set(records[0])

    from sftlab.report.reader import open_repo

    repo = open_repo(tmp_path / "runs")  # indexes finished runs, as `aim up` does
    (run,) = list(repo.iter_runs())
    assert run["data_regime"] == "countdown_cot"
    assert run["config"]["data"]["global_batch_size"] == 6  # the quickstart's
    names = {(m.name, m.context.to_dict().get("stage")) for m in run.metrics()}
    assert ("train/loss", "train") in names and ("eval/countdown/accuracy", "eval") in names
    from aim.storage.context import Context  # get_metric needs a Context, not a dict

    accuracy = run.get_metric("eval/countdown/accuracy", Context({"stage": "eval"})).dataframe()
    assert accuracy["step"].tolist() == [0, 1, 2]


def test_score_command_math_multiple_choice_and_code_rows(tmp_path, monkeypatch) -> None:
    import sftlab.eval.scorers.math as math_scorer
    from sftlab import scorers

    calls = {"verify_answers": 0, "score_code_many": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(math_scorer, "verify_answers", counted("verify_answers", math_scorer.verify_answers))
    code_many = scorers.BATCH_SCORERS[scorers.score_code]
    monkeypatch.setitem(scorers.BATCH_SCORERS, scorers.score_code, counted("score_code_many", code_many))
    a_plus_b = {
        "tests": [{"input": "1 2\n", "output": "3\n"}, {"input": "40 2\n", "output": "42\n"}],
        "fn_name": None,
    }
    code = "<think>\nread two ints\n</think>\n```python\na, b = map(int, input().split())\nprint(a + b)\n```"
    rows = [
        {
            "task": "math500",
            "reference": "\\frac{1}{2}",
            "response": "<think>\n3/6\n</think>\n\n\\boxed{0.5}",
        },
        {
            "task": "gpqa_diamond",
            "reference": "B",
            "response": "<think>\nthe answer is (A)\n</think>\n\\boxed{\\text{(B)}}",
        },
        {"task": "livecodebench_v2", "reference": a_plus_b, "response": code},
        {
            "task": "aime24",
            "reference": "204",
            "response": "<think>\n\\boxed{204}\n</think>\n\nI am not sure.",
        },
        {"task": "mmlu_pro", "reference": "J", "response": "The answer is (J) since the others fail."},
        {"task": "code", "reference": a_plus_b, "response": code.replace("a + b", "a - b")},
        {
            "task": "gsm8k",
            "reference": "72",
            "response": "<think>\n8 * 9\n</think>\n\nShe earns \\boxed{\\$72}.",
        },
        {"task": "countdown", "reference": {"numbers": [1, 2, 3], "target": 6}, "response": "\\boxed{1*2*3}"},
        {"task": "math", "reference": "2\\sqrt{2}", "response": "\\boxed{\\sqrt{8}}"},
    ]
    src, dst = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", "--input", str(src), "--output", str(dst)]) == 0
    out = [json.loads(line) for line in dst.read_text().splitlines()]
    assert [o["task"] for o in out] == [r["task"] for r in rows]  # input order kept across the batches
    assert [o["correct"] for o in out] == [True, True, True, False, True, False, True, True, True]
    assert [o["extracted"] for o in out[:2]] == ["0.5", "B"] and out[3]["extracted"] is None
    assert out[2]["extracted"].startswith("a, b = map(int") and out[8]["extracted"] == "\\sqrt{8}"
    assert calls == {"verify_answers": 1, "score_code_many": 1}  # one batch per kind, not one per row


def test_score_command_checks_every_reference_up_front(tmp_path, capsys) -> None:
    rows = [
        {"task": "math500", "reference": 0.5, "response": "\\boxed{0.5}"},
        {"task": "gpqa_diamond", "reference": "E", "response": "\\boxed{E}"},
        {"task": "livecodebench_v2", "reference": {"tests": []}, "response": "```python\nprint(1)\n```"},
        {"task": "code", "reference": ["not", "a", "mapping"], "response": "x"},
        {"task": "countdown", "reference": 6, "response": "x"},
        {"task": "aime25", "reference": "204", "response": "\\boxed{204}"},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["score", "--input", str(src), "--output", str(tmp_path / "o.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "5 bad rows" in err and "in.jsonl:6" not in err
    assert "in.jsonl:1: a math reference must be the gold answer" in err and "got 0.5 (float)" in err
    assert "in.jsonl:2:" in err and "one of the letters 'ABCD', got 'E'" in err
    assert "in.jsonl:3: invalid LiveCodeBench reference" in err
    assert "in.jsonl:4: reference for task 'code' has the wrong shape" in err
    assert "in.jsonl:5: reference for task 'countdown' has the wrong shape" in err
    assert not (tmp_path / "o.jsonl").exists()
