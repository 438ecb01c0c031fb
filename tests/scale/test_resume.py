"""A run stopped mid-way and resumed from its checkpoint reproduces the uninterrupted run bit for bit on CPU:
the same loss at every step, the same final weights, and the same GenerationEval history (no eval
repeated or lost). Stops are tried mid-epoch and exactly at an epoch boundary, with shuffling on, so the
data position and the next epoch's order both have to survive the checkpoint.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from sftlab.callbacks import GenerationEval
from sftlab.data.countdown_regime import CountdownRegime
from sftlab.data.datamodule import SFTDataModule
from sftlab.eval.backends.hf_backend import HFBackend
from sftlab.eval.tasks.countdown import CountdownTask
from sftlab.module import SFTModule

pytestmark = pytest.mark.slow
MAX_STEPS = 7  # 16 examples / global batch 4 = 4 steps per epoch: the run crosses into epoch 1


class Crash(RuntimeError):
    pass


class StepLog(pl.Callback):
    """The logged train/loss of every optimizer step; optionally crashes once a step is done."""

    def __init__(self, crash_after: int | None = None) -> None:
        self.losses: dict[int, float] = {}
        self.crash_after = crash_after

    def on_train_start(self, trainer, pl_module) -> None:
        self.last_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        step = trainer.global_step
        if step != self.last_step:  # an optimizer step finished with this micro-batch
            self.losses[step] = float(trainer.callback_metrics["train/loss"])
            self.last_step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.crash_after is not None and trainer.global_step == self.crash_after:
            raise Crash(f"simulated crash after step {self.crash_after}")


def fit(tiny_model: str, root: Path, *, crash_after: int | None = None, ckpt_path: str | None = None):
    pl.seed_everything(0)
    log = StepLog(crash_after)
    evaluator = GenerationEval(
        [CountdownTask(num_problems=2, num_numbers=(3,), max_tokens=4, temperature=0.0)],
        backend=HFBackend(batch_size=2),
        every_n_steps=2,
        at_start=True,
        at_end=True,
    )
    checkpoints = ModelCheckpoint(
        dirpath=root / "ckpt", filename="{step}", every_n_train_steps=1, save_top_k=-1
    )
    data = SFTDataModule(
        CountdownRegime(train_size=16, num_numbers=(3,), max_attempts=1),
        tokenizer=tiny_model,
        micro_batch_size=2,
        global_batch_size=4,
        max_length=512,
        shuffle=True,
    )
    module = SFTModule(model_name=tiny_model, learning_rate=1e-3, warmup_ratio=0.2)
    trainer = pl.Trainer(
        max_steps=MAX_STEPS,
        accelerator="cpu",
        precision="32-true",
        logger=False,
        log_every_n_steps=1,
        callbacks=[log, evaluator, checkpoints],
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    if crash_after is None:
        trainer.fit(module, datamodule=data, ckpt_path=ckpt_path)
    else:
        with pytest.raises(Crash):
            trainer.fit(module, datamodule=data)
    return log, evaluator, module, trainer


def without_timing(history: list[dict]) -> list[tuple[int, dict]]:
    return [(h["step"], {k: v for k, v in h["metrics"].items() if k != "eval/time_s"}) for h in history]


@pytest.fixture(scope="module")
def uninterrupted(tiny_model: str, tmp_path_factory: pytest.TempPathFactory):
    return fit(tiny_model, tmp_path_factory.mktemp("uninterrupted"))


@pytest.mark.parametrize("stop_at", [3, 4], ids=["mid-epoch", "epoch-boundary"])
def test_resume_reproduces_the_uninterrupted_run(
    tiny_model: str, tmp_path: Path, uninterrupted, stop_at: int
):
    full_log, full_eval, full_module, full_trainer = uninterrupted
    assert sorted(full_log.losses) == list(range(1, MAX_STEPS + 1))
    assert full_trainer.datamodule.steps_per_epoch == 4 < MAX_STEPS  # the run crosses an epoch boundary

    first_log, first_eval, _, _ = fit(tiny_model, tmp_path, crash_after=stop_at)
    assert sorted(first_log.losses) == list(range(1, stop_at + 1))
    ckpt = tmp_path / "ckpt" / f"step={stop_at}.ckpt"
    assert ckpt.is_file()

    log, evaluator, module, trainer = fit(tiny_model, tmp_path, ckpt_path=str(ckpt))
    assert trainer.global_step == MAX_STEPS and trainer.current_epoch == full_trainer.current_epoch
    assert sorted(log.losses) == list(range(stop_at + 1, MAX_STEPS + 1))
    # Bit-identical: == on floats, torch.equal on weights; no tolerance.
    assert {**first_log.losses, **log.losses} == full_log.losses
    for (name, full), (name2, resumed) in zip(
        full_module.model.state_dict().items(), module.model.state_dict().items(), strict=True
    ):
        assert name == name2 and torch.equal(full, resumed), name
    # GenerationEval's history came back from the checkpoint: the same evals, none repeated or lost.
    assert [h["step"] for h in evaluator.history] == [0, 2, 4, 6, 7]
    assert without_timing(evaluator.history) == without_timing(full_eval.history)


def test_resuming_on_another_world_size_converts_the_position() -> None:
    from sftlab.data.datamodule import StepPlannedDataset
    from sftlab.data.example import DataError

    class Ex:
        num_targets = 1

        def __len__(self) -> int:
            return 4

    def dataset(world_size: int, rank: int = 0) -> StepPlannedDataset:
        return StepPlannedDataset(
            [Ex()] * 16,
            mode="packed",
            pad_token_id=0,
            global_batch_size=8,
            micro_batch_size=2,
            world_size=world_size,
            rank=rank,
            shuffle=True,
            seed=0,
        )

    one = dataset(1)  # accumulation 4
    one.position = 4 * 1 + 16 // 8 * 4  # epoch 1, one whole step in
    two = dataset(2)  # accumulation 2
    two.load_state_dict(one.state_dict())
    assert two.state_dict()["epoch"] == 1 and two.state_dict()["consumed"] == 2
    one.position += 1  # mid-step: cannot be mapped onto another accumulation
    with pytest.raises(DataError, match="1 micro-batches into an optimizer step"):
        dataset(2).load_state_dict(one.state_dict())


def test_each_epoch_reshuffles_although_lightning_never_exhausts_the_loader(
    tiny_model: str, tokenizer
) -> None:
    # Lightning stops fetching after len(loader) batches, so the generator never runs to its end; the
    # next iter() must still move on to the next epoch's order.
    from sftlab.data.datamodule import StepPlannedDataset
    from sftlab.data.example import Example, user_prompt
    from sftlab.data.formatting import tokenize_example

    examples = [
        tokenize_example(Example(prompt=user_prompt(f"q{i}"), response=f"a{i}"), tokenizer) for i in range(8)
    ]
    ds = StepPlannedDataset(
        examples,
        mode="packed",
        pad_token_id=0,
        global_batch_size=4,
        micro_batch_size=2,
        world_size=1,
        rank=0,
        shuffle=True,
        seed=0,
    )

    def one_epoch() -> list[list[int]]:
        it = iter(ds)
        return [next(it)["input_ids"][0].tolist() for _ in range(len(ds))]

    first, second = one_epoch(), one_epoch()
    assert ds.epoch == 2 and first != second
