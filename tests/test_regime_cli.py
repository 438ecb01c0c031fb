"""`sftlab regime`: JSONL round trip, the prefix property, threshold flags and row-numbered errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftlab.regime_cli import main, run
from sftlab.training_regime import RegimeThresholds

N = {"id": 1500, "ood": 594}  # MATH500 avg@3, GPQA-Diamond avg@3
# The paper-shaped run: OOD dip while length spikes, recovery, settled length, peak at 480, over-fitting.
ROWS = [
    {"step": s, "id_accuracy": i, "ood_accuracy": o, "response_tokens_mean": n_tok, "num_samples": N}
    for s, i, o, n_tok in [
        (0, 0.50, 0.40, 600),
        (10, 0.56, 0.33, 1500),
        (20, 0.62, 0.30, 2600),
        (40, 0.70, 0.38, 3000),
        (80, 0.76, 0.48, 2000),
        (160, 0.80, 0.52, 1700),
        (320, 0.80, 0.53, 1650),
        (480, 0.84, 0.60, 1600),
        (640, 0.78, 0.50, 1900),
        (800, 0.74, 0.42, 2300),
        (960, 0.72, 0.40, 2700),
    ]
]
KEYS = ["step", "training_regime", "length_stage", "reason", "recommendation", "best_step"]


def write_jsonl(path: Path, rows: list) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_round_trip_labels_each_row(tmp_path):
    out = tmp_path / "sub" / "out.jsonl"
    assert run(write_jsonl(tmp_path / "hist.jsonl", ROWS), str(out)) == 0
    verdicts = read_jsonl(out)
    assert [v["step"] for v in verdicts] == [r["step"] for r in ROWS]
    assert all(list(v) == KEYS for v in verdicts)
    assert (
        verdicts[2]["training_regime"] == "underfitting"
        and verdicts[2]["length_stage"] == "surface_imitation"
    )
    assert verdicts[6]["training_regime"] == "optimal" and verdicts[6]["length_stage"] == "genuine_reasoning"
    assert verdicts[-1]["training_regime"] == "overfitting" and verdicts[-1]["recommendation"] == "stop"
    assert verdicts[-1]["best_step"] == 480


def test_row_i_uses_only_rows_up_to_i(tmp_path):
    out = tmp_path / "out.jsonl"
    run(write_jsonl(tmp_path / "hist.jsonl", ROWS), str(out))
    full = read_jsonl(out)
    for i in range(len(ROWS)):
        prefix_out = tmp_path / f"out{i}.jsonl"
        run(write_jsonl(tmp_path / f"hist{i}.jsonl", ROWS[: i + 1]), str(prefix_out))
        assert read_jsonl(prefix_out)[-1] == full[i]


def test_nulls_and_blank_lines_are_allowed(tmp_path):
    rows = [{**r, "response_tokens_mean": None, "id_accuracy": None, "num_samples": 594} for r in ROWS[:3]]
    out = tmp_path / "out.jsonl"
    run(write_jsonl(tmp_path / "hist.jsonl", [rows[0], "", rows[1], rows[2]]), str(out))
    verdicts = read_jsonl(out)
    assert len(verdicts) == 3 and "judged from accuracy only" in verdicts[-1]["reason"]


def test_main_threshold_flags_change_the_verdict(tmp_path, capsys):
    hist = write_jsonl(tmp_path / "hist.jsonl", ROWS[:9])  # one eval past the peak
    out = tmp_path / "out.jsonl"
    assert main(["--input", hist, "--output", str(out)]) == 0
    assert read_jsonl(out)[-1]["training_regime"] == "optimal"
    assert main(["--input", hist, "--output", str(out), "--patience", "1"]) == 0
    assert read_jsonl(out)[-1]["training_regime"] == "overfitting"
    assert main(["--input", hist, "--output", str(out), "--z", "20"]) == 0
    assert read_jsonl(out)[-1]["training_regime"] == "underfitting"
    assert "labelled" in capsys.readouterr().out


def test_run_accepts_thresholds(tmp_path):
    out = tmp_path / "out.jsonl"
    run(write_jsonl(tmp_path / "hist.jsonl", ROWS[:9]), str(out), RegimeThresholds(patience=1))
    assert read_jsonl(out)[-1]["recommendation"] == "stop"


def test_bad_rows_are_all_reported_with_their_row_numbers(tmp_path):
    rows = [
        ROWS[0],
        {k: v for k, v in ROWS[1].items() if k != "num_samples"},  # row 2: missing key
        '{"step": 20, "id_accuracy": 0.6,',  # row 3: invalid JSON
        {**ROWS[3], "ood_accuracy": 38.0},  # row 4: a percentage, not a share
        ROWS[4],
        {**ROWS[5], "step": 80},  # row 6: repeats step 80
    ]
    out = tmp_path / "out.jsonl"
    with pytest.raises(ValueError) as info:
        run(write_jsonl(tmp_path / "hist.jsonl", rows), str(out))
    message = str(info.value)
    assert "hist.jsonl" in message and "4 problems" in message
    assert "row 2: missing key(s) num_samples" in message
    assert "row 3: invalid JSON" in message
    assert "row 4:" in message and "ood_accuracy=38.0" in message and "0.45" in message
    assert "row 6: step 80 is not after the previous step 80" in message and "sort by step" in message
    for clean in ("row 1:", "row 5:"):
        assert clean not in message
    assert not out.exists()


def test_empty_or_non_object_input(tmp_path):
    with pytest.raises(ValueError, match="no rows; the first row must be the step-0 baseline"):
        run(write_jsonl(tmp_path / "empty.jsonl", []), str(tmp_path / "out.jsonl"))
    with pytest.raises(ValueError, match=r"row 1: expected a JSON object, got list"):
        run(write_jsonl(tmp_path / "list.jsonl", ["[1, 2]"]), str(tmp_path / "out.jsonl"))


def test_main_reports_errors_on_one_line_with_exit_code_2(tmp_path, capsys):
    hist = write_jsonl(tmp_path / "hist.jsonl", [ROWS[0], {**ROWS[1], "num_samples": 0}])
    assert main(["--input", hist, "--output", str(tmp_path / "out.jsonl")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("sftlab regime: error:")
    assert "row 2" in err and "num_samples=0" in err and "Traceback" not in err
    assert main(["--input", str(tmp_path / "missing.jsonl"), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "cannot read --input" in capsys.readouterr().err
    assert main(["--input", hist, "--output", str(tmp_path / "o.jsonl"), "--z", "-1"]) == 2
    assert "z=-1.0" in capsys.readouterr().err
