"""Math data regimes: every schema loads through the real reading code (jsonl and parquet), bad input is
reported with file, column and row, regimes switch by one config, and the paper configs say what they are."""

from __future__ import annotations

import importlib
import json
import logging
import re
from pathlib import Path

import lightning.pytorch as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from sftlab.data.countdown_regime import CountdownRegime
from sftlab.data.datamodule import SFTDataModule
from sftlab.data.example import PAPER_INSTRUCTION, DataError
from sftlab.data.regimes import (
    DATA_REGIMES,
    DeepSeekR1,
    MathCoT,
    MathNoCoT,
    NuminaMath,
    UnverifiedCoT,
    data_regime_class,
)
from sftlab.module import SFTModule
from tests.conftest import repo_root

COT = "<think>\nTry 3 + 4 = 7, check: 7 is right.\n</think>\n\nSo the sum is 7.\n\\boxed{7}"
COT_2 = "<think>Half of 8 is 4.</think>\nThe answer is \\boxed{4}."
# The released Math-CoT-20k schema: `message` chat list + `response` (+ the authors' `advantage`).
MATH_COT_ROWS = [
    {"message": [{"role": "user", "content": "What is 3 + 4?"}], "response": COT, "advantage": 1.0},
    {"message": [{"role": "user", "content": "What is half of 8?"}], "response": COT_2, "advantage": 1.0},
]
NUMINA_ROWS = [
    {"problem": "What is 3 + 4?", "solution": "3 + 4 = 7, so the answer is $\\boxed{7}$."},
    {"problem": "What is half of 8?", "solution": "8 / 2 = 4. $\\boxed{4}$"},
]


def write(path: Path, rows: list) -> str:
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_math_cot_schema_loads_from_jsonl_and_parquet(tmp_path, suffix) -> None:
    regime = MathCoT(source=write(tmp_path / f"cot{suffix}", MATH_COT_ROWS))
    examples = regime.load("train")
    assert [e.response for e in examples] == [COT, COT_2]
    assert examples[0].prompt == ({"role": "user", "content": f"What is 3 + 4?\n{PAPER_INSTRUCTION}"},)
    assert examples[1].source.endswith(f"cot{suffix}:2")
    assert regime.stats == {"train_rows": 2, "train_examples": 2, "train_skipped": 0}


def test_chat_and_plain_variants_of_the_math_schema(tmp_path) -> None:
    rows = [
        # `messages` holding the assistant turn, no response column
        {"messages": [{"role": "user", "content": "Q1?"}, {"role": "assistant", "content": COT}]},
        # plain question/response with a gold answer
        {"question": "Q2?", "response": COT_2, "answer": 4},
        # the instruction already in the user turn is not doubled
        {"message": [{"role": "user", "content": f"Q3?\n{PAPER_INSTRUCTION}"}], "response": COT},
    ]
    examples = MathCoT(source=write(tmp_path / "mix.jsonl", rows)).load("train")
    assert [e.response for e in examples] == [COT, COT_2, COT]
    assert [e.prompt[-1]["content"].count(PAPER_INSTRUCTION) for e in examples] == [1, 1, 1]
    assert examples[1].reference == "4"
    plain = MathCoT(source=write(tmp_path / "mix.jsonl", rows), instruction="").load("train")
    assert plain[0].prompt == ({"role": "user", "content": "Q1?"},)


def test_teacher_regimes_share_the_schema_and_say_which_they_are(tmp_path) -> None:
    path = write(tmp_path / "cot.parquet", MATH_COT_ROWS)
    for cls, name in ((DeepSeekR1, "deepseek_r1"), (UnverifiedCoT, "unverified_cot")):
        regime = cls(source=path)
        assert regime.name == name and [e.response for e in regime.load("train")] == [COT, COT_2]


def test_math_nocot_strips_the_thinking_or_reads_a_nocot_file(tmp_path) -> None:
    derived = MathNoCoT(source=write(tmp_path / "cot.jsonl", MATH_COT_ROWS)).load("train")
    assert [e.response for e in derived] == ["So the sum is 7.\n\\boxed{7}", "The answer is \\boxed{4}."]
    nocot_rows = [
        {"message": r["message"], "response": e.response} for r, e in zip(MATH_COT_ROWS, derived, strict=True)
    ]
    from_file = MathNoCoT(source=write(tmp_path / "nocot.parquet", nocot_rows), derive_from_cot=False)
    assert [e.response for e in from_file.load("train")] == [e.response for e in derived]
    # Reading CoT rows as no-CoT rows is caught, not trained on.
    with pytest.raises(DataError, match=r"cot.jsonl:1: .*contains <think>.*derive_from_cot=true"):
        MathNoCoT(source=str(tmp_path / "cot.jsonl"), derive_from_cot=False).load("train")
    assert MathNoCoT().rows.source == "jasonrqh/Math-CoT-20k"
    assert MathNoCoT(derive_from_cot=False).rows.source == "jasonrqh/Math-NoCoT-20k"


def test_numinamath_reads_problem_solution_and_messages(tmp_path) -> None:
    examples = NuminaMath(source=write(tmp_path / "numina.parquet", NUMINA_ROWS)).load("train")
    assert [e.response for e in examples] == [r["solution"] for r in NUMINA_ROWS]
    assert examples[0].prompt[0]["content"].startswith("What is 3 + 4?\n")
    chat = [{"messages": [{"role": "user", "content": "Q?"}, {"role": "assistant", "content": "It is 2."}]}]
    assert NuminaMath(source=write(tmp_path / "chat.jsonl", chat)).load("train")[0].response == "It is 2."


def test_missing_column_names_the_column_and_the_file_and_field_map_fixes_it(tmp_path) -> None:
    path = write(tmp_path / "data.jsonl", [{"question": "Q?", "output": COT}])
    with pytest.raises(
        DataError,
        match=r"data.jsonl: rows have no 'response' column \(columns: question, output\); set field_map",
    ):
        MathCoT(source=path).load("train")
    assert MathCoT(source=path, field_map={"output": "response"}).load("train")[0].response == COT
    with pytest.raises(DataError, match=r"data.jsonl: rows have no 'solution' or 'response' column"):
        NuminaMath(source=path).load("train")
    with pytest.raises(ValueError, match=r"'output' -> 'respons' \(did you mean 'response'\?\)"):
        MathCoT(source=path, field_map={"output": "respons"})


def test_bad_rows_are_named_or_skipped_and_counted(tmp_path, caplog) -> None:
    rows = [
        MATH_COT_ROWS[0],
        {"message": [{"role": "user", "content": "Q?"}], "response": "<think>clipped before the end"},
        "not json",
        {"message": "not a list", "response": COT},
        MATH_COT_ROWS[1],
    ]
    path = write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(DataError) as err:
        MathCoT(source=path).load("train")
    message = str(err.value)
    assert "3 of 5 rows are bad" in message and "on_bad_row=skip" in message
    assert re.search(r"bad.jsonl:2: response has no closed </think>", message)
    assert (
        "bad.jsonl:3: invalid JSON" in message
        and "bad.jsonl:4: chat messages must be a non-empty list" in message
    )
    regime = MathCoT(source=path, on_bad_row="skip")
    with caplog.at_level(logging.WARNING):
        examples = regime.load("train")
    assert [e.source.rsplit(":", 1)[1] for e in examples] == ["1", "5"]
    assert regime.stats == {
        "train_rows": 5,
        "train_examples": 2,
        "train_skipped": 3,
        "train_skipped_malformed_row": 2,
        "train_skipped_unclosed_think": 1,
    }
    assert "skipped 3 of 5 rows" in caplog.text and "unclosed_think=1" in caplog.text


def test_validation_split_needs_a_validation_source(tmp_path) -> None:
    path = write(tmp_path / "cot.jsonl", MATH_COT_ROWS)
    with pytest.raises(DataError, match="'math_cot' has no validation data: set .*validation_source"):
        MathCoT(source=path).load("validation")
    regime = MathCoT(source=path, validation_source=write(tmp_path / "val.jsonl", MATH_COT_ROWS[:1]))
    assert len(regime.load("validation")) == 1 and regime.stats["validation_examples"] == 1


def test_registry_is_literal_and_suggests() -> None:
    assert {name: cls.name for name, cls in DATA_REGIMES.items()} == {name: name for name in DATA_REGIMES}
    assert DATA_REGIMES["countdown_cot"] is CountdownRegime
    with pytest.raises(
        ValueError,
        match=r"unknown data regime 'math-cot'\. Did you mean math_cot.*Known data regimes: math_cot, ",
    ):
        data_regime_class("math-cot")


def test_each_data_regime_config_selects_its_regime() -> None:
    configs = sorted((repo_root() / "configs/data_regimes").glob("*.yaml"))
    assert {p.stem for p in configs} == set(DATA_REGIMES)
    for path in configs:
        text = path.read_text()
        assert f"--config configs/data_regimes/{path.name}" in text  # the header's command
        spec = yaml.safe_load(text)["data"]["regime"]
        module, _, cls_name = spec["class_path"].rpartition(".")
        cls = getattr(importlib.import_module(module), cls_name)
        assert cls is DATA_REGIMES[path.stem]
        assert cls(**spec.get("init_args", {})).name == path.stem  # init_args are valid and load nothing


def test_one_config_line_switches_the_regime() -> None:
    from sftlab.cli import build_cli

    root = repo_root() / "configs"
    args = ["--config", str(root / "quickstart.yaml"), "--config", str(root / "data_regimes/math_nocot.yaml")]
    cli = build_cli([*args, "--trainer.logger=false"], run=False)
    regime = cli.datamodule.regime
    assert isinstance(regime, MathNoCoT) and regime.rows.source == "jasonrqh/Math-CoT-20k"
    shipped = yaml.safe_load((root / "quickstart.yaml").read_text())["data"]["global_batch_size"]
    assert cli.datamodule.global_batch_size == shipped  # the rest of the quickstart is kept


def tiny_fit(regime, tiny_model: str) -> tuple[SFTModule, SFTDataModule, pl.Trainer]:
    module = SFTModule(model_name=tiny_model, warmup_ratio=0.0)
    data = SFTDataModule(
        regime, tokenizer=tiny_model, micro_batch_size=2, global_batch_size=2, max_length=512
    )
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(module, datamodule=data)
    return module, data, trainer


def test_every_regime_trains_the_same_module(tmp_path, tiny_model: str) -> None:
    cot = write(tmp_path / "cot.parquet", MATH_COT_ROWS)
    regimes = [
        MathCoT(source=cot),
        MathNoCoT(source=cot),
        NuminaMath(source=write(tmp_path / "numina.jsonl", NUMINA_ROWS)),
        DeepSeekR1(source=cot),
        UnverifiedCoT(source=cot),
        CountdownRegime(train_size=2, num_numbers=(3,), max_attempts=1),
    ]
    assert {r.name for r in regimes} == set(DATA_REGIMES)
    for regime in regimes:
        module, data, trainer = tiny_fit(regime, tiny_model)
        assert trainer.global_step == 1, regime.name
        assert data.stats["train_rows"] == 2
        assert 0 < trainer.callback_metrics["train/loss"].item() < 20, regime.name


PAPER_RUN = re.compile(
    r"Qwen3-(?P<size>[\d.]+B)_(?P<data>[\w-]+?)-(?P<rows>20k|2\.5k)_lr(?P<lr>[\de.-]+)_ep(?P<epochs>\d+)_bs(?P<bs>\d+)(?P<const>_ConstLR)?"
)
PAPER_DATA = {
    "Math-CoT": "math_cot",
    "Math-NoCoT": "math_nocot",
    "Numina-Math": "numinamath",
    "DeepSeek-R1": "deepseek_r1",
    "Unverified-CoT": "unverified_cot",
    "Countdown-CoT": "countdown_cot",
}


def test_paper_configs_match_their_run_names_and_the_shared_settings() -> None:
    """Each configs/paper file is complete; its name (the authors' run name) fixes model, data and schedule,
    and everything else is the paper's shared setting (DESIGN.md "Paper settings")."""
    configs = sorted((repo_root() / "configs/paper").glob("*.yaml"))
    names = {p.stem for p in configs}
    for size in ("1.7B", "4B", "8B", "14B"):
        assert f"Qwen3-{size}_Math-CoT-20k_lr5e-5_ep8_bs256" in names
    for run in (
        "Math-CoT-2.5k_lr5e-5_ep8_bs32",
        "Math-CoT-20k_lr5e-5_ep1_bs32",
        "Math-CoT-20k_lr1e-5_ep1_bs256",
        "Math-CoT-20k_lr5e-5_ep16_bs256_ConstLR",
        "Math-CoT-20k_lr1e-4_ep16_bs256_ConstLR",
    ):
        assert f"Qwen3-14B_{run}" in names
    for size in ("8B", "14B"):
        for data in ("Math-NoCoT", "Numina-Math", "DeepSeek-R1", "Countdown-CoT", "Unverified-CoT"):
            assert f"Qwen3-{size}_{data}-20k_lr5e-5_ep8_bs256" in names
    for path in configs:
        run = PAPER_RUN.fullmatch(path.stem)
        assert run, path.name
        text = path.read_text()
        assert f"python -m sftlab fit --config configs/paper/{path.name}" in text
        config = yaml.safe_load(text)
        trainer, model, data = config["trainer"], config["model"], config["data"]
        rows = 2560 if run["rows"] == "2.5k" else 20480
        steps = int(run["epochs"]) * rows // int(run["bs"])
        assert model["model_name"] == f"Qwen/Qwen3-{run['size']}-Base"
        assert float(model["learning_rate"]) == float(run["lr"])
        assert model["lr_schedule"] == ("constant" if run["const"] else "cosine")
        assert (model["weight_decay"], model["warmup_ratio"], model["loss_reduction"]) == (
            0.01,
            0.1,
            "step_token_mean",
        )
        assert trainer["max_epochs"] == int(run["epochs"]) and data["global_batch_size"] == int(run["bs"])
        assert data.get("num_samples") == (2560 if run["rows"] == "2.5k" else None)
        assert (trainer["precision"], trainer["gradient_clip_val"]) == ("bf16-mixed", 1.0)
        assert (data["max_length"], data["batch_mode"], data["shuffle"]) == (20000, "padded", False)
        regime = data["regime"]["class_path"].rsplit(".", 1)[1]
        assert DATA_REGIMES[PAPER_DATA[run["data"]]].__name__ == regime
        (callback,) = trainer["callbacks"]
        assert callback["class_path"] == "sftlab.callbacks.GenerationEval"
        evals = callback["init_args"]
        assert evals["every_n_steps"] == 0
        paper_steps = [10, 20, 40, 80, 160, 320, 480, 640]
        assert evals["eval_steps"][: len(paper_steps)] == [s for s in paper_steps if s <= steps]
        assert max(evals["eval_steps"]) <= steps
        backend = evals["backend"]["init_args"]
        assert backend == {"gpu_memory_utilization": 0.3, "enable_sleep_mode": True, "max_model_len": 32768}
        if run["epochs"] == "8" or run["bs"] == "32":
            assert steps == 640, path.name  # the default and Table 1's runs share the 640-step budget
