"""SFTLabProgressBar and EvalProgress on a real Trainer: eval headline in the bar, plain lines off a TTY."""

from __future__ import annotations

import io

import lightning.pytorch as pl
import torch
from lightning.pytorch.demos.boring_classes import BoringModel

from sftlab.callbacks.progress import EvalProgress, SFTLabProgressBar


class FakeEval(pl.Callback):
    """Puts an eval headline into callback_metrics at step 2, as GenerationEval does after an eval."""

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == 2:
            trainer.callback_metrics["eval/ood/accuracy"] = torch.tensor(0.25)
            trainer.callback_metrics["eval/id/accuracy"] = torch.tensor(0.5)


def fit(bar: SFTLabProgressBar, tmp_path, max_steps: int = 4) -> pl.Trainer:
    trainer = pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[FakeEval(), bar],
        default_root_dir=tmp_path,
    )
    trainer.fit(BoringModel())
    return trainer


def test_plain_lines_every_n_steps_without_a_tty(tmp_path, capsys) -> None:
    bar = SFTLabProgressBar(log_every_n_steps=2, tty=False)
    fit(bar, tmp_path, max_steps=5)
    out = capsys.readouterr()
    assert bar.lines == [
        "step 2/5 | latest eval: id/accuracy=0.500 ood/accuracy=0.250",
        "step 4/5 | latest eval: id/accuracy=0.500 ood/accuracy=0.250",
        "step 5/5 | latest eval: id/accuracy=0.500 ood/accuracy=0.250",
    ]
    assert out.out.count("step ") == 3 and "\r" not in out.out + out.err  # no bar redraws


def test_the_bar_carries_the_latest_eval_headline(tmp_path, capsys) -> None:
    bar = SFTLabProgressBar(tty=True)
    trainer = fit(bar, tmp_path)
    shown = bar.get_metrics(trainer, trainer.lightning_module)
    assert shown["ood/accuracy"] == "0.250" and shown["id/accuracy"] == "0.500"
    assert bar.lines == [] and "ood/accuracy=0.250" in capsys.readouterr().out  # drawn in the tqdm bar


def test_eval_progress_bar_and_plain_line(capsys) -> None:
    lines: list[str] = []
    plain = EvalProgress("countdown", 40, tty=False, echo=lines.append)
    for done in (1, 2, 3):
        plain(done, 3)
    assert len(lines) == 1 and lines[0].startswith("eval step 40 countdown: 3/3 prompts scored in ")

    bar = EvalProgress("countdown", 40, tty=True)
    for done in (1, 2, 3):
        bar(done, 3)
    assert bar._bar.n == 3
    out = capsys.readouterr().out
    assert "eval countdown @ step 40" in out and "prompt" in out


def test_tty_detection_follows_stdout(monkeypatch) -> None:
    monkeypatch.setattr("sys.stdout", io.StringIO())
    assert SFTLabProgressBar().tty is False and EvalProgress("t", 0).tty is False
