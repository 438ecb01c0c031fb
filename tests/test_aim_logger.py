"""AimLogger: per-run output folder for local and remote repos, and writes from rank 0 only.

That another Lightning logger (CSVLogger) sits next to AimLogger when `trainer.logger` is a list is
checked on the real CLI run in tests/test_report.py (test_csv_logger_next_to_aim_by_config).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from lightning.pytorch.utilities import rank_zero_only

from sftlab.aim_logger import AimLogger


def test_run_folders_for_local_and_remote_repos(tmp_path) -> None:
    local = AimLogger(repo=str(tmp_path / "runs"), run_name="a")
    assert local.save_dir == str(tmp_path / "runs" / "outputs" / "a")
    # A remote tracking server holds no files: run folders fall back to ./runs/outputs, or output_root.
    remote = AimLogger(repo="aim://127.0.0.1:53800", run_name="b")
    assert remote.save_dir == str(Path("runs") / "outputs" / "b")
    remote = AimLogger(repo="aim://127.0.0.1:53800", run_name="b", output_root=str(tmp_path / "out"))
    assert remote.save_dir == str(tmp_path / "out" / "b")
    assert remote._run is None  # nothing connected to the server yet: the run starts on first write
    assert AimLogger(repo=str(tmp_path)).run_name != AimLogger(repo=str(tmp_path)).run_name


@pytest.fixture
def rank_one():
    previous = rank_zero_only.rank
    rank_zero_only.rank = 1
    yield
    rank_zero_only.rank = previous


def test_only_rank_zero_writes(tmp_path, rank_one) -> None:
    logger = AimLogger(repo=str(tmp_path), run_name="r", system_tracking_interval=None)
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.log_params({"data_regime": "math_cot"})
    logger.log_hyperparams({"lr": 1e-4})
    assert logger._run is None and not (tmp_path / ".aim").exists()
    rank_zero_only.rank = 0
    logger.log_metrics({"train/loss": 1.0}, step=0)
    logger.log_params({"data_regime": "math_cot"})
    assert logger._run is not None and (tmp_path / ".aim").is_dir()
    assert logger.experiment["data_regime"] == "math_cot"
    logger.finalize("success")
