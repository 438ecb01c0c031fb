"""`sftlab data build`: counts on known-correct/wrong/unboxed/clipped/malformed rows with the real
math-verify, the seeded choice, byte-identical output, a verifier that hangs, and input errors."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sftlab.data.build import DROP_REASONS, build_regime, write_parquet
from sftlab.data.build_cli import main
from sftlab.data.example import PAPER_INSTRUCTION
from sftlab.data.regimes import MathCoT, MathNoCoT, UnverifiedCoT

# One worker: the verifier pool is kept per worker count, so every test here reuses the same processes.
WORKERS = 1

RAW = [
    {"question": "What is 3 + 4?", "answer": "7", "response": "<think>3 + 4 = 7</think>\nSo \\boxed{7}."},
    {"question": "What is 3 + 4?", "answer": "7", "response": "<think>3 + 4 = 8?</think>\n\\boxed{8}"},
    {"question": "What is 3 + 4?", "answer": "7", "response": "<think>count up</think>\nIt is $\\boxed{7}$."},
    {"question": "Half of 1?", "answer": "\\frac{1}{2}", "response": "<think>1/2</think>\n\\boxed{0.5}"},
    {"question": "Half of 1?", "answer": "\\frac{1}{2}", "response": "<think>clipped at max tokens"},
    {
        "question": "Count the sides of a triangle.",
        "answer": "3",
        "response": "<think>x</think>\nI could not finish.",
    },
    {"question": "Twice 5?", "answer": "10", "response": "<think>5 + 5</think>\n\\boxed{11}"},
    # A box inside the thinking is a draft, not the answer.
    {"question": "Twice 5?", "answer": 10, "response": "<think>\\boxed{10}</think>\nDone."},
    {"question": "No answer given?", "response": "<think>x</think>\\boxed{1}"},
    "not json",
]


def write_raw(tmp_path: Path, rows: list = RAW) -> str:
    path = tmp_path / "raw.jsonl"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_counts_and_choice_on_known_rows(tmp_path) -> None:
    result = build_regime(write_raw(tmp_path), regime="math_cot", on_bad_row="skip", max_workers=WORKERS)
    report = result.report
    assert (report["rows_in"], report["questions_in"], report["rows_kept"]) == (10, 5, 2)
    assert report["questions_dropped"] == 3 and report["rows_not_selected"] == 1
    assert report["dropped_rows_by_reason"] == {
        "wrong_answer": 2,
        "no_boxed_answer": 2,
        "unclosed_think": 1,
        "verifier_timeout": 0,
        "verifier_error": 0,
        "malformed_row": 2,
    }
    # "Twice 5?" has one wrong and one unboxed response: a tie goes to wrong_answer.
    assert report["dropped_questions_by_reason"] == {r: 0 for r in DROP_REASONS} | {
        "wrong_answer": 1,
        "no_boxed_answer": 1,
        "malformed_row": 1,
    }
    every_row = (
        report["rows_kept"] + report["rows_not_selected"] + sum(report["dropped_rows_by_reason"].values())
    )
    assert every_row == report["rows_in"]
    assert [m.split(": ")[0].rsplit(":", 1)[1] for m in report["malformed_rows"]] == ["9", "10"]
    rows = result.rows
    assert [r["messages"] for r in rows] == [
        [{"role": "user", "content": "What is 3 + 4?"}],
        [{"role": "user", "content": "Half of 1?"}],
    ]
    expected = random.Random("0:What is 3 + 4?").choice([RAW[0]["response"], RAW[2]["response"]])
    assert rows[0]["response"] == expected and rows[1]["response"] == RAW[3]["response"]
    assert [r["answer"] for r in rows] == ["7", "\\frac{1}{2}"]
    lengths = sorted(len(r["response"]) for r in rows)
    assert report["response_chars"]["min"] == lengths[0] and report["response_chars"]["max"] == lengths[1]


def test_output_is_byte_identical_and_feeds_training(tmp_path) -> None:
    raw = write_raw(tmp_path)
    outputs = []
    for name in ("a", "b"):
        out, report = tmp_path / f"{name}.parquet", tmp_path / f"{name}.json"
        argv = [
            "build",
            "--regime",
            "math_cot",
            "--input",
            raw,
            "--output",
            str(out),
            "--report",
            str(report),
        ]
        assert main([*argv, "--on_bad_row", "skip", "--seed", "3", "--workers", str(WORKERS)]) == 0
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1]
    assert json.loads((tmp_path / "a.json").read_text())["rows_kept"] == 2
    examples = MathCoT(source=str(tmp_path / "a.parquet")).load("train")
    assert [e.prompt[0]["content"] for e in examples] == [
        f"What is 3 + 4?\n{PAPER_INSTRUCTION}",
        f"Half of 1?\n{PAPER_INSTRUCTION}",
    ]
    assert pq.read_table(tmp_path / "a.parquet").column_names == [
        "messages",
        "response",
        "answer",
        "source_index",
    ]


def test_math_nocot_build_strips_the_thinking(tmp_path) -> None:
    result = build_regime(write_raw(tmp_path), regime="math_nocot", on_bad_row="skip", max_workers=WORKERS)
    assert [r["response"] for r in result.rows][1] == "\\boxed{0.5}"
    assert all("</think>" not in r["response"] for r in result.rows)
    write_parquet(result.rows, tmp_path / "nocot.parquet")
    loaded = MathNoCoT(source=str(tmp_path / "nocot.parquet"), derive_from_cot=False).load("train")
    assert [e.response for e in loaded] == [r["response"] for r in result.rows]


def test_unverified_keeps_a_seeded_response_per_question_and_reports_tokens(tmp_path, tokenizer) -> None:
    rows = [
        {"question": f"Q{q}?", "answer": "1", "response": f"<think>try {r}</think>\\boxed{{{r}}}"}
        for q in range(8)
        for r in range(6)
    ]
    raw = write_raw(tmp_path, rows)
    picks = {}
    for seed in (0, 1):
        result = build_regime(raw, regime="unverified_cot", seed=seed, tokenizer=tokenizer)
        assert len(result.rows) == 8 and result.report["verified"] is False
        for q, row in enumerate(result.rows):
            options = [r["response"] for r in rows if r["question"] == f"Q{q}?"]
            assert row["response"] == random.Random(f"{seed}:Q{q}?").choice(options)
        picks[seed] = [r["response"] for r in result.rows]
        assert result.report["response_tokens"]["count"] == 8
    assert picks[0] != picks[1]
    write_parquet(result.rows, tmp_path / "u.parquet")
    assert len(UnverifiedCoT(source=str(tmp_path / "u.parquet")).load("train")) == 8


def verifier_that_hangs(gold: str, answer: str):
    """Runs in the verifier's worker process. Ignores the soft time limit, so only the hard kill stops it."""
    from sftlab.eval.math_verify import VerifyOutcome

    if gold == "HANG":
        signal.signal(signal.SIGALRM, signal.SIG_IGN)
        time.sleep(600)
    return VerifyOutcome("correct" if f"\\boxed{{{gold}}}" in answer else "wrong", gold)


def test_a_hanging_verifier_cannot_stall_the_build(tmp_path) -> None:
    rows = [
        {"question": "Hangs?", "answer": "HANG", "response": "<think>x</think>\\boxed{1}"},
        {"question": "Five?", "answer": "5", "response": "<think>x</think>\\boxed{5}"},
    ]
    start = time.monotonic()
    result = build_regime(
        write_raw(tmp_path, rows),
        regime="math_cot",
        timeout_s=0.5,
        max_workers=WORKERS,
        verifier=f"{__name__}:verifier_that_hangs",
    )
    assert time.monotonic() - start < 60
    assert result.report["dropped_rows_by_reason"]["verifier_timeout"] == 1
    assert result.report["dropped_questions_by_reason"]["verifier_timeout"] == 1
    assert [r["answer"] for r in result.rows] == ["5"]


def test_input_errors(tmp_path, capsys) -> None:
    raw = write_raw(tmp_path)
    out, report = tmp_path / "out.parquet", tmp_path / "report.json"
    argv = ["--input", raw, "--output", str(out), "--report", str(report)]
    assert main(["build", "--regime", "math_cot", *argv]) == 2
    err = capsys.readouterr().err
    assert "2 of 10 rows are malformed" in err and "raw.jsonl:9: needs non-empty strings: no 'answer'" in err
    assert "raw.jsonl:10: invalid JSON" in err and "--on_bad_row skip" in err
    assert not out.exists() and not report.exists()
    assert main(["build", "--regime", "math-cot", *argv]) == 2
    assert "Did you mean math_cot" in capsys.readouterr().err
    assert main(["build", "--regime", "numinamath", *argv]) == 2
    assert "'numinamath' is not built from teacher outputs" in capsys.readouterr().err
    (tmp_path / "cols.jsonl").write_text('{"question": "Q?", "answer": "1"}\n')
    assert (
        main(
            [
                "build",
                "--regime",
                "unverified_cot",
                *argv[:0],
                "--input",
                str(tmp_path / "cols.jsonl"),
                *argv[2:],
            ]
        )
        == 2
    )
    assert "cols.jsonl:1: needs non-empty strings: no 'response'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", [["--timeout", "0"], ["--workers", "0"], ["--output", "x.jsonl"]])
def test_bad_flags_are_rejected(tmp_path, flag, capsys) -> None:
    argv = [
        "build",
        "--regime",
        "math_cot",
        "--input",
        write_raw(tmp_path),
        "--output",
        str(tmp_path / "o.parquet"),
    ]
    assert main([*argv, "--report", str(tmp_path / "r.json"), *flag]) == 2
    assert flag[0].lstrip("-") in capsys.readouterr().err
