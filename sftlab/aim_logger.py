"""AimLogger configured for sftlab: slash-style metric keys kept whole, stage as the Aim context, and a
run output folder of its own.

Aim's stock logger strips `train_`/`val_` prefixes into a context; sftlab keys are `stage/group/name`,
so the key is kept as is and its first segment becomes the context `{"stage": "train"}` (or eval,
regime), which separates train from eval curves in the Aim UI. Two traps of the stock logger are
avoided (DESIGN.md): `log_system_params` imports the removed `pkg_resources` (off by default here), and
Lightning writes `config.yaml` and checkpoints into the logger's `save_dir`, which for Aim is the shared
repo, so the next run would abort; here `save_dir` is a per-run folder under `output_root`.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Any

from aim.sdk.adapters.pytorch_lightning import AimLogger as _AimLogger
from lightning.pytorch.utilities import rank_zero_only


def default_run_name() -> str:
    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + os.urandom(2).hex()


class AimLogger(_AimLogger):
    """Aim tracking for sftlab runs.

    Args:
        repo: Aim repository folder (created on first use) or a remote `aim://host:port` for multi-node.
        experiment: Aim experiment name (a grouping field in the UI).
        run_name: the run's name; default a timestamp. Also names its output folder.
        output_root: runs' own folders (config.yaml, checkpoints, eval generations) go to
            `output_root/run_name`; default `<repo>/outputs` (for a remote repo: `./runs/outputs`).
        system_tracking_interval: seconds between CPU/GPU/memory samples; None disables.
        capture_terminal_logs: store the terminal output with the run.
    """

    def __init__(
        self,
        repo: str = "runs",
        experiment: str = "sftlab",
        run_name: str | None = None,
        output_root: str | None = None,
        system_tracking_interval: int | None = 30,
        capture_terminal_logs: bool = False,
    ) -> None:
        super().__init__(
            repo=repo,
            experiment=experiment,
            run_name=run_name,
            system_tracking_interval=system_tracking_interval,
            log_system_params=False,
            capture_terminal_logs=capture_terminal_logs,
            context_prefixes={},
        )
        self.run_name = run_name or default_run_name()
        self._run_name = self.run_name
        remote = repo.startswith("aim://")
        root = output_root or (os.path.join("runs", "outputs") if remote else os.path.join(repo, "outputs"))
        self._output_dir = str(Path(root) / self.run_name)

    def parse_context(self, name: str) -> tuple[str, dict[str, Any]]:
        stage = name.split("/", 1)[0] if "/" in name else "other"
        return name, {"stage": stage}

    @property
    def save_dir(self) -> str:
        return self._output_dir

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    @rank_zero_only
    def log_params(self, params: dict[str, Any]) -> None:
        """Top-level run params (data_regime, model_name, ...) for grouping in the UI."""
        for key, value in params.items():
            self.experiment.set(key, value, strict=False)
