"""The `sftlab` command line.

`fit` and `validate` go through LightningCLI (YAML configs compose: several `--config`, dotted
overrides such as `--trainer.max_steps=4`). The other subcommands are plain argparse programs over the
library: `score`, `regime`, and the ones later issues add. Every run records its resolved config and
grouping params (data regime, model, size, schedule, seed, git commit) with its loggers.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

LIGHTNING_COMMANDS = {
    "fit": "train a model (and evaluate it by generation while it trains)",
    "validate": "teacher-forced validation loss of a model on a data regime",
}


def _tool_commands() -> dict[str, tuple[str, Callable[[list[str]], int]]]:
    # Imported lazily so `sftlab score` does not pay for Lightning's import.
    def score(argv: list[str]) -> int:
        from sftlab.score_cli import main

        return main(argv)

    def regime(argv: list[str]) -> int:
        from sftlab.regime_cli import main

        return main(argv)

    def data(argv: list[str]) -> int:
        from sftlab.data.build_cli import main

        return main(argv)

    def report(argv: list[str]) -> int:
        from sftlab.report.cli import main

        return main(argv)

    def evaluate(argv: list[str]) -> int:
        from sftlab.eval.eval_cli import main

        return main(argv)

    return {
        "report": (
            "paper-style figures and an HTML report from Aim runs: --repo runs --output DIR",
            report,
        ),
        "eval": (
            "evaluate a model on a suite offline: --model PATH --suite configs/eval/paper.yaml --output DIR",
            evaluate,
        ),
        "score": ("score responses offline: --input IN.jsonl --output OUT.jsonl", score),
        "regime": (
            "label training regimes from an eval history: --input HIST.jsonl --output OUT.jsonl",
            regime,
        ),
        "data": (
            "build a data regime from raw teacher outputs: build --regime math_cot --input RAW.jsonl ...",
            data,
        ),
    }


def default_precision() -> str:
    """bf16 mixed precision where the hardware has it, else fp32."""
    import torch

    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def run_params(trainer: Any, module: Any, datamodule: Any, config: dict[str, Any]) -> dict[str, Any]:
    """Top-level grouping fields recorded with every run."""
    from sftlab.models import parameter_count

    count = parameter_count(module.model_path)
    size = count / 1e9 if count is not None else None
    regime = getattr(getattr(datamodule, "regime", None), "name", None)
    return {
        "data_regime": regime,
        "model_name": getattr(module, "model_name", None),
        "model_size_b": round(size, 4) if size is not None else None,
        "schedule": {
            "num_samples": getattr(datamodule, "num_samples", None),
            "global_batch_size": getattr(datamodule, "global_batch_size", None),
            "epochs": trainer.max_epochs,
            "max_steps": trainer.max_steps,
            "batch_mode": getattr(datamodule, "batch_mode", None),
        },
        "seed": config.get("seed_everything"),
        "git_commit": git_commit(),
    }


def build_cli(args: list[str] | None = None, run: bool = True) -> Any:
    from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

    from sftlab.data.datamodule import SFTDataModule
    from sftlab.module import SFTModule

    class SFTLabSaveConfig(SaveConfigCallback):
        """Writes config.yaml to the run folder and records the config and run params with the loggers."""

        def save_config(self, trainer: Any, pl_module: Any, stage: str) -> None:
            config = self.parser.dump(self.config, skip_none=False, format="yaml")
            import yaml

            resolved = yaml.safe_load(config)
            params = run_params(trainer, pl_module, trainer.datamodule, resolved)
            for logger in trainer.loggers:
                if hasattr(logger, "log_params"):
                    logger.log_params({"config": resolved, **params})
                else:
                    logger.log_hyperparams({"run": params})

    class SFTLabCLI(LightningCLI):
        def add_arguments_to_parser(self, parser: Any) -> None:
            # The model's tokenizer is the data's tokenizer: stated once, linked.
            parser.link_arguments("model.model_name", "data.tokenizer")

        def _instantiate_trainer(self, config: dict[str, Any], callbacks: list[Any]) -> Any:
            # sftlab's bar (eval headline; plain lines in logs) unless the config brings its own or none.
            from lightning.pytorch.callbacks import ProgressBar

            from sftlab.callbacks.progress import SFTLabProgressBar

            given = config.get("callbacks") or []
            configured = [*(given if isinstance(given, list) else [given]), *callbacks]
            if config.get("enable_progress_bar") is not False and not any(
                isinstance(c, ProgressBar) for c in configured
            ):
                callbacks = [*callbacks, SFTLabProgressBar()]
            return super()._instantiate_trainer(config, callbacks)

        @staticmethod
        def subcommands() -> dict[str, set[str]]:
            return {
                "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
                "validate": {"model", "dataloaders", "datamodule"},
            }

    return SFTLabCLI(
        SFTModule,
        SFTDataModule,
        save_config_callback=SFTLabSaveConfig,
        save_config_kwargs={"overwrite": True},
        seed_everything_default=0,
        trainer_defaults={
            "logger": {"class_path": "sftlab.aim_logger.AimLogger"},
            "precision": default_precision(),
            "log_every_n_steps": 1,
            "num_sanity_val_steps": 0,
        },
        args=args,
        run=run,
        auto_configure_optimizers=False,
    )


def _overview() -> str:
    lines = ["usage: python -m sftlab <command> [options]", "", "commands:"]
    for name, text in LIGHTNING_COMMANDS.items():
        lines.append(f"  {name:<10} {text}")
    for name, (text, _) in _tool_commands().items():
        lines.append(f"  {name:<10} {text}")
    lines += [
        "",
        "`python -m sftlab <command> --help` shows a command's options.",
        "example: python -m sftlab fit --config configs/quickstart.yaml",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from_command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_overview())
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    tools = _tool_commands()
    if command in tools:
        return tools[command][1](rest)
    if command in LIGHTNING_COMMANDS:
        # From the shell LightningCLI reads sys.argv itself (given both, it warns that args were passed twice).
        build_cli(None if from_command_line else [command, *rest])
        return 0
    import difflib

    known = [*LIGHTNING_COMMANDS, *tools]
    close = difflib.get_close_matches(command, known, n=2)
    hint = f" Did you mean {' or '.join(close)}?" if close else ""
    print(f"sftlab: unknown command {command!r}.{hint}\n\n{_overview()}", file=sys.stderr)
    return 2
