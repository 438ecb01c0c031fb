"""The Aim web UI over a repo written by a real short run: the run, its params and metrics are served.

Starts `aim up` (the same server a researcher opens in the browser) on a free port, waits for it, and asks
its REST API what the UI would show: the run search (a binary stream of encoded key/value pairs, decoded
with Aim's own tree decoder), the metric search with the query the README gives, and the run's info page.
`aim up` alone takes ~15-20 s to start on 2 CPU cores, hence `slow`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.report_fixtures import EVAL_STEPS, RUN_NAME, FittedRun, fitted_repo  # noqa: F401 - fixture

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 30) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def decode_stream(data: bytes) -> dict[str, Any]:
    """Aim's streamed search answer: (u32 key length, key, u32 value length, value)*, encoded tree paths."""
    from aim.storage.treeutils import decode_tree

    pairs, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from("I", data, i)
        key = data[i + 4 : i + 4 + n]
        i += 4 + n
        (m,) = struct.unpack_from("I", data, i)
        pairs.append((key, data[i + 4 : i + 4 + m]))
        i += 4 + m
    return decode_tree(iter(pairs)) if pairs else {}


def numpy_blob(value: dict[str, Any]) -> list[float]:
    return np.frombuffer(value["blob"], dtype=value["dtype"]).tolist()


class AimUI:
    def __init__(self, repo: Path, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        aim = Path(sys.executable).with_name("aim")
        command = [str(aim)] if aim.exists() else [sys.executable, "-m", "aim.cli.cli"]
        self.log = log.open("w")
        # Its own session: `aim up` starts uvicorn as a child, and the whole group is stopped at the end.
        self.process = subprocess.Popen(
            [
                *command,
                "up",
                "--repo",
                str(repo),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_until_up(self, timeout: float = 120) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise AssertionError(f"aim up exited with {self.process.returncode}")
            try:
                json.loads(get(f"{self.base}/api/projects/", timeout=5))
                return time.monotonic() - started
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise AssertionError(f"aim up did not answer within {timeout} s")

    def search_runs(self, query: str) -> dict[str, Any]:
        q = urllib.parse.quote(query)
        return decode_stream(get(f"{self.base}/api/runs/search/run/?q={q}&report_progress=false"))

    def search_metrics(self, query: str) -> dict[str, Any]:
        q = urllib.parse.quote(query)
        return decode_stream(get(f"{self.base}/api/runs/search/metric/?q={q}&report_progress=false"))

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def test_aim_ui_serves_the_run_its_params_and_metrics(fitted_repo: FittedRun, tmp_path) -> None:  # noqa: F811
    # A copy: `aim up` writes Aim's run index into the repo, and the report tests read the original.
    repo = tmp_path / "runs"
    shutil.copytree(fitted_repo.repo, repo, ignore=shutil.ignore_patterns("outputs"))
    ui = AimUI(repo, tmp_path / "aim_up.log")
    try:
        startup = ui.wait_until_up()
        # `aim up` indexes runs in the background (every few seconds): poll until the run is listed.
        deadline, runs = time.monotonic() + 60, {}
        while time.monotonic() < deadline and not runs:
            runs = {h: r for h, r in ui.search_runs(f'run.name == "{RUN_NAME}"').items() if "props" in r}
            if not runs:
                time.sleep(1)
        assert len(runs) == 1, (
            f"run {RUN_NAME} not listed by the UI; server log:\n{(tmp_path / 'aim_up.log').read_text()[-2000:]}"
        )
        ((run_hash, run),) = runs.items()
        assert run["props"]["name"] == RUN_NAME and run["props"]["experiment"]["name"] == "report-test"
        assert run["params"]["data_regime"] == "countdown_cot"
        assert run["params"]["schedule"]["global_batch_size"] == 6
        listed = {(t["name"], t["context"].get("stage")) for t in run["traces"]["metric"]}
        assert {
            ("train/loss", "train"),
            ("eval/countdown/accuracy", "eval"),
            ("eval/ood/accuracy", "eval"),
        } <= listed

        # The grouping query of the README: a param filter on the run.
        assert run_hash in ui.search_runs(
            'run.data_regime == "countdown_cot" and run.schedule.global_batch_size == 6'
        )
        assert not {h for h, r in ui.search_runs('run.data_regime == "math_cot"').items() if "props" in r}

        # The metric query of the README: OOD accuracy of every run, with its eval steps.
        found = ui.search_metrics('metric.name == "eval/ood/accuracy"')
        traces = found[run_hash]["traces"]
        assert [t["name"] for t in traces] == ["eval/ood/accuracy"] and traces[0]["context"] == {
            "stage": "eval"
        }
        assert numpy_blob(traces[0]["iters"]) == [float(s) for s in EVAL_STEPS]

        info = json.loads(get(f"{ui.base}/api/runs/{run_hash}/info/?sequence=metric&sequence=distributions"))
        assert (
            info["params"]["model_name"] == run["params"]["model_name"]
            and info["params"]["data_regime"] == "countdown_cot"
        )
        names = {t["name"] for t in info["traces"]["metric"]}
        assert {"train/loss", "eval/countdown/accuracy"} <= names
        distributions = {(d["name"], d["context"]["task"]) for d in info["traces"]["distributions"]}
        assert ("eval/countdown/response_tokens", "countdown") in distributions
        print(f"aim up answered after {startup:.1f} s")
    finally:
        ui.stop()
    assert ui.process.returncode is not None
