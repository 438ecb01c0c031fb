"""`sftlab report`: a real short run -> figures and one self-contained HTML page; synthetic runs for the
figures a 2-step run cannot show (regime bands, length stages, ASR per category); the error cases."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
import yaml

from sftlab.cli import main
from sftlab.report.canvas import spans
from sftlab.report.cli import make_report
from sftlab.report.figures import write_figures
from sftlab.report.reader import ReportError, RunData, Series, read_runs, resolve_runs
from sftlab.report.summary import Point, direction, summarize, table_keys
from tests.conftest import repo_root
from tests.report_fixtures import EVAL_STEPS, RUN_NAME, FittedRun, fitted_repo, write_synthetic_run  # noqa: F401

PNG = b"\x89PNG\r\n\x1a\n"


def accuracy_from_records(run_dir: Path, task: str) -> list[float]:
    """Each eval's accuracy recomputed from the generations GenerationEval wrote (independent of Aim)."""
    out = []
    for step in EVAL_STEPS:
        rows = [
            json.loads(line)
            for line in (run_dir / f"eval/step_{step:06d}/{task}.jsonl").read_text().splitlines()
        ]
        out.append(sum(float(r["value"] or 0.0) for r in rows) / len(rows))
    return out


# -- a real run ------------------------------------------------------------------------------------------
def test_report_of_a_real_run(fitted_repo: FittedRun, tmp_path, capsys) -> None:  # noqa: F811
    out = tmp_path / "report"
    assert main(["report", "--repo", str(fitted_repo.repo), "--output", str(out)]) == 0
    assert f"wrote {out / 'index.html'}" in capsys.readouterr().out

    page = (out / "index.html").read_text()
    pngs = sorted(out.glob("*.png"))
    names = {p.stem for p in pngs}
    assert {
        "accuracy_countdown",
        "accuracy_countdown_ood",
        "aggregates",
        "response_length",
        "train_loss",
    } <= names
    # Self-contained: every PNG is embedded byte for byte as a data URI, and nothing is fetched.
    embedded = [base64.b64decode(b) for b in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]
    assert len(embedded) == len(pngs)
    for png in pngs:
        data = png.read_bytes()
        assert data.startswith(PNG) and len(data) > 5000
        assert data in embedded
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert RUN_NAME in page and "eval/countdown/accuracy" in page


def test_plotted_series_come_from_the_run(fitted_repo: FittedRun, tmp_path) -> None:  # noqa: F811
    report = make_report(fitted_repo.repo, tmp_path / "report")
    (run,) = report.runs
    assert run.name == RUN_NAME and run.param("data_regime") == "countdown_cot"
    shipped = yaml.safe_load((repo_root() / "configs/quickstart.yaml").read_text())["model"]["learning_rate"]
    assert run.param("schedule.global_batch_size") == 6 and run.param("model.learning_rate") == shipped
    series = run.series["eval/countdown/accuracy"]
    assert list(series.steps) == EVAL_STEPS  # one point per eval (step 0, 1, 2)
    expected = accuracy_from_records(fitted_repo.run_dir, "countdown")
    assert list(series.values) == pytest.approx(expected)

    figure = next(f for f in report.figures if f.name == "accuracy_countdown")
    (line,) = figure.lines_on("eval/countdown/accuracy")
    assert line.label == f"countdown_cot · {RUN_NAME}"
    assert line.steps == tuple(float(s) for s in EVAL_STEPS) and list(line.values) == pytest.approx(expected)
    (baseline,) = figure.lines_on("eval/countdown/accuracy", kind="baseline")
    assert list(baseline.values) == pytest.approx([expected[0]] * 2)  # dashed line at the step-0 value

    lengths = next(f for f in report.figures if f.name == "response_length")
    (line,) = lengths.lines_on("eval/countdown_ood/response_tokens_mean")
    assert list(line.values) == list(run.series["eval/countdown_ood/response_tokens_mean"].values)
    train = run.series["train/loss"]
    (loss,) = next(f for f in report.figures if f.name == "train_loss").lines_on("train/loss")
    assert len(train) == 2 and loss.values == train.values


def test_the_run_tracks_response_length_distributions(fitted_repo: FittedRun) -> None:  # noqa: F811
    from aim import Repo
    from aim.storage.context import Context

    read_runs(fitted_repo.repo)  # indexes the run
    (run,) = list(Repo(str(fitted_repo.repo)).iter_runs())
    dist = run.get_distribution_sequence(
        "eval/countdown/response_tokens", Context({"stage": "eval", "task": "countdown"})
    )
    steps, (values, *_) = dist.data.items_list()
    assert steps == EVAL_STEPS
    for step, distribution in zip(steps, values, strict=True):
        rows = fitted_repo.run_dir / f"eval/step_{step:06d}/countdown.jsonl"
        tokens = [json.loads(line)["num_tokens"] for line in rows.read_text().splitlines()]
        counts, edges = distribution.to_np_histogram()
        assert counts.sum() == len(tokens) == 4 and edges[0] <= min(tokens) and max(tokens) <= edges[-1]


def test_csv_logger_next_to_aim_by_config(fitted_repo: FittedRun) -> None:  # noqa: F811
    # trainer.logger was a list [AimLogger, CSVLogger]: both got the metrics, the run folder stayed Aim's.
    (csv_file,) = fitted_repo.csv_dir.glob("lightning_logs/version_*/metrics.csv")
    header, *rows = csv_file.read_text().splitlines()
    columns = header.split(",")
    assert "eval/countdown/accuracy" in columns and "train/loss" in columns
    acc = [r.split(",")[columns.index("eval/countdown/accuracy")] for r in rows]
    assert len([a for a in acc if a]) == len(EVAL_STEPS)
    assert (fitted_repo.run_dir / "config.yaml").is_file()
    assert (fitted_repo.run_dir / "eval/step_000002/countdown.jsonl").is_file()
    assert not list((fitted_repo.repo / ".aim").glob("config.yaml"))


def test_progress_prints_plain_lines_without_a_tty(fitted_repo: FittedRun) -> None:  # noqa: F811
    printed = fitted_repo.stdout
    for step in EVAL_STEPS:  # GenerationEval(progress_bar=True): one line per task per eval
        assert f"eval step {step} countdown: 4/4 prompts scored" in printed
    # SFTLabProgressBar(log_every_n_steps=1): one line per step with the latest eval headline.
    lines = [line for line in printed.splitlines() if line.startswith("step ")]
    assert [line.split(" | ")[0] for line in lines] == ["step 1/2", "step 2/2"]
    assert all(
        "latest eval (step " in line and "id/accuracy=" in line and "ood/accuracy=" in line for line in lines
    )
    assert "\r" not in printed


# -- synthetic runs: several runs, grouping, regime and length bands, ASR ---------------------------------
STEPS = [0, 10, 20, 40, 80]


@pytest.fixture(scope="module")
def synthetic_repo(tmp_path_factory) -> Path:
    from aim import Repo

    repo = tmp_path_factory.mktemp("synthetic")
    Repo.from_path(str(repo), init=True)

    def metrics(dip: float, asr0: float) -> dict[str, list[tuple[int, float]]]:
        ood = [0.30, 0.30 - dip, 0.30, 0.36, 0.35]
        out = {
            "eval/ood/accuracy": list(zip(STEPS, ood, strict=True)),
            "eval/gpqa/accuracy": list(zip(STEPS, ood, strict=True)),
            "eval/math500/response_tokens_mean": list(zip(STEPS, [300, 2000, 2500, 1500, 1450], strict=True)),
            "eval/hexphi/asr": [(s, asr0 + 0.05 * i) for i, s in enumerate(STEPS)],
            "regime/label": list(zip(STEPS, [0, 0, 0, 1, 1], strict=True)),
            "regime/length_stage": list(zip(STEPS, [1, 0, 0, 1, 1], strict=True)),
            "train/loss": [(s, 2.0 - s / 100) for s in range(0, 81, 5)],
        }
        for c in (1, 2, 3):
            out[f"eval/hexphi/asr/cat_{c:02d}"] = [(s, asr0 + 0.01 * c) for s in STEPS]
        return out

    write_synthetic_run(
        repo,
        "cot-256",
        metrics(0.10, 0.1),
        {"data_regime": "math_cot", "schedule": {"global_batch_size": 256}},
    )
    write_synthetic_run(
        repo, "cot-32", metrics(0.05, 0.2), {"data_regime": "math_cot", "schedule": {"global_batch_size": 32}}
    )
    write_synthetic_run(
        repo,
        "nocot",
        metrics(0.0, 0.3),
        {"data_regime": "math_nocot", "schedule": {"global_batch_size": 256}},
    )
    write_synthetic_run(repo, "no-evals", {"train/loss": [(0, 2.0), (1, 1.9)]}, {"data_regime": "math_cot"})
    return repo


def test_runs_overlay_with_a_legend_by_the_group_field(synthetic_repo: Path, tmp_path, capsys) -> None:
    report = make_report(synthetic_repo, tmp_path, group_by="schedule.global_batch_size")
    assert "skipping run no-evals" in capsys.readouterr().err  # all runs asked for: skipped, not an error
    assert [r.name for r in report.runs] == ["cot-256", "cot-32", "nocot"]
    figure = next(f for f in report.figures if f.name == "accuracy_gpqa")
    labels = [line.label for line in figure.lines_on("eval/gpqa/accuracy")]
    assert labels == ["256 · cot-256", "32 · cot-32", "256 · nocot"]
    dip = figure.lines_on("eval/gpqa/accuracy")[0]
    assert dip.values == pytest.approx((0.30, 0.20, 0.30, 0.36, 0.35))
    assert len(figure.lines_on("eval/gpqa/accuracy", kind="baseline")) == 3

    regime = next(f for f in report.figures if f.name == "training_regime")
    assert {b.label for b in regime.bands} == set(labels)
    assert regime.bands[0].spans == ((0, 40, "underfitting"), (40, 80, "optimal"))
    length = next(f for f in report.figures if f.name == "response_length")
    assert length.bands[0].spans == (
        (0, 10, "genuine_reasoning"),
        (10, 40, "surface_imitation"),
        (40, 80, "genuine_reasoning"),
    )

    asr = next(f for f in report.figures if f.name == "asr_hexphi")
    axes = {line.axis for line in asr.lines if line.kind == "metric"}
    assert axes == {
        "eval/hexphi/asr",
        "eval/hexphi/asr/cat_01",
        "eval/hexphi/asr/cat_02",
        "eval/hexphi/asr/cat_03",
    }
    (nocot,) = [line for line in asr.lines_on("eval/hexphi/asr") if line.label.endswith("nocot")]
    assert nocot.values == pytest.approx((0.3, 0.35, 0.4, 0.45, 0.5))

    page = report.page.read_text()
    # Summary row of cot-256's OOD accuracy: baseline 0.300@0, lowest 0.200@10, best 0.360@40, final 0.350@80.
    row = re.search(
        r"<tr><td class=k>eval/ood/accuracy</td><td class=k>256 · cot-256</td>(.*?)</tr>", page
    ).group(1)
    cells = [re.sub(r"<[^>]+>", "", c).split() for c in re.findall(r"<td>(.*?)</td>", row)]
    assert cells[:4] == [["0.300", "@0"], ["0.200", "@10"], ["0.360", "@40"], ["0.350", "@80"]]


def test_summary_spans_and_selectors_are_plain_functions() -> None:
    s = summarize(Series("eval/hexphi/asr", (0, 10, 20), (0.2, 0.1, 0.4)))
    assert s.baseline == Point(0, 0.2) and s.lowest == Point(10, 0.1) and s.best == Point(10, 0.1)
    assert s.final == Point(20, 0.4)
    assert summarize(Series("eval/x/response_tokens_mean", (5,), (3.0,))).best is None  # no better direction
    assert summarize(Series("eval/x/accuracy", (5, 6), (float("nan"), 0.5))).baseline is None
    assert direction("eval/hexphi/asr/cat_04") == "lower" and direction("eval/general/score") == "higher"
    assert spans(Series("regime/label", (0, 10, 20), (0.0, 0.0, 2.0)), end=30) == [(0, 20, 0), (20, 30, 2)]
    runs = [("a" * 24, "x"), ("ab" + "c" * 22, "y"), ("b" * 24, "y")]
    assert resolve_runs(["x", "abcccc"], runs) == ["a" * 24, "ab" + "c" * 22]
    with pytest.raises(ReportError, match=r"'y' matches 2 runs.*unknown run 'z'"):
        resolve_runs(["y", "z"], runs)
    assert table_keys([]) == []


def test_a_proxy_judged_asr_gets_its_own_labelled_figure(tmp_path) -> None:
    # HEx-PHI with the refusal-matcher judge logs asr_refusal_proxy(/cat_NN) and leaves asr (and the
    # safety headline) NaN: the proxy is drawn under its own name, the NaN series are not drawn at all.
    nan = float("nan")
    series = {
        "eval/hexphi/asr": Series("eval/hexphi/asr", (0, 10), (nan, nan)),
        "eval/safety/asr": Series("eval/safety/asr", (0, 10), (nan, nan)),
        "eval/hexphi/asr_refusal_proxy": Series("eval/hexphi/asr_refusal_proxy", (0, 10), (0.1, 0.3)),
        "eval/hexphi/asr_refusal_proxy/cat_01": Series(
            "eval/hexphi/asr_refusal_proxy/cat_01", (0, 10), (0.0, 0.5)
        ),
    }
    run = RunData("f" * 24, "proxy", "x", params={"data_regime": "math_cot"}, series=series)
    figures = {f.name: f for f in write_figures([run], tmp_path)}
    assert set(figures) == {"asr_refusal_proxy_hexphi"}
    figure = figures["asr_refusal_proxy_hexphi"]
    assert "approximation" in figure.title
    (line,) = figure.lines_on("eval/hexphi/asr_refusal_proxy/cat_01")
    assert line.values == (0.0, 0.5)
    assert (
        "eval/hexphi/asr_refusal_proxy" in table_keys([run])
        and direction("eval/hexphi/asr_refusal_proxy") == "lower"
    )


# -- errors: one line, exit 2 ----------------------------------------------------------------------------
def run_report(argv: list[str], capsys) -> tuple[int, str]:
    code = main(["report", *argv])
    err = capsys.readouterr().err.strip()
    return code, err


def assert_one_line(err: str, pattern: str) -> None:
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert re.search(pattern, err), err


def test_an_unknown_run_is_named_with_the_known_ones(synthetic_repo: Path, tmp_path, capsys) -> None:
    code, err = run_report(
        ["--repo", str(synthetic_repo), "--runs", "cot-265", "--output", str(tmp_path)], capsys
    )
    assert code == 2
    assert_one_line(
        err, r"^sftlab report: error: unknown run 'cot-265' \(did you mean cot-256.*Runs in the repo: .*nocot"
    )
    assert not (tmp_path / "index.html").exists()


def test_a_run_without_eval_metrics_is_an_error_when_asked_for(
    synthetic_repo: Path, tmp_path, capsys
) -> None:
    code, err = run_report(
        ["--repo", str(synthetic_repo), "--runs", "cot-32", "no-evals", "--output", str(tmp_path)], capsys
    )
    assert code == 2
    assert_one_line(err, r"no eval metrics in run no-evals \(\w{8}\)")


def test_an_empty_repo_and_a_missing_repo(tmp_path, capsys) -> None:
    from aim import Repo

    empty = tmp_path / "empty"
    empty.mkdir()
    Repo.from_path(str(empty), init=True)
    code, err = run_report(["--repo", str(empty), "--output", str(tmp_path / "out")], capsys)
    assert code == 2
    assert_one_line(err, r"no runs in the Aim repo .*empty")
    code, err = run_report(["--repo", str(tmp_path), "--output", str(tmp_path / "out")], capsys)
    assert code == 2
    assert_one_line(err, r"is not an Aim repo \(no \.aim folder")
    code, err = run_report(["--repo", str(tmp_path / "nope"), "--output", str(tmp_path / "out")], capsys)
    assert code == 2
    assert_one_line(err, r"no such folder: --repo .*nope")
