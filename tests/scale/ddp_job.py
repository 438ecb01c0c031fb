"""A small sftlab fit run as its own program, for the multi-process tests (Lightning's DDP launcher re-runs
this script once per extra rank, so it must be a file, not a function in a test).

    python tests/scale/ddp_job.py JOB.json

JOB.json keys: model, out, accelerator (cpu), strategy (ddp | fsdp | deepspeed_stage_3), precision, devices, num_nodes, max_steps, micro_batch_size, global_batch_size,
eval_every (0 = no GenerationEval), eval_ranks, ckpt_every (0 = no checkpoints), ckpt_path, sleep_s
(seconds per micro-batch, to give a test time to kill a rank), train_size, stall_rank/stall_s (that rank
sleeps stall_s before the first eval: a rank that does not arrive), barrier_timeout_s, save_final.

Every rank writes `out/rank{R}.json` (pid, then the step losses it saw); rank 0 also writes
`out/result.json`: per-step train/loss, the eval history, and `out/grads_step1.pt`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from sftlab.callbacks import GenerationEval
from sftlab.data.countdown_regime import CountdownRegime
from sftlab.data.datamodule import SFTDataModule
from sftlab.eval.backends.hf_backend import HFBackend
from sftlab.eval.tasks.countdown import CountdownTask
from sftlab.module import SFTModule


class Recorder(pl.Callback):
    """Per-step losses, the first step's gradients, and a pid file per rank."""

    def __init__(self, out: Path, sleep_s: float, stall_rank: int = -1, stall_s: float = 0.0) -> None:
        self.out = out
        self.sleep_s = sleep_s
        self.stall_rank = stall_rank
        self.stall_s = stall_s
        self.losses: dict[int, float] = {}
        self.saved_grads = False

    def _write(self, trainer: pl.Trainer) -> None:
        path = self.out / f"rank{trainer.global_rank}.json"
        path.write_text(json.dumps({"pid": os.getpid(), "losses": self.losses}))

    def on_train_start(self, trainer, pl_module) -> None:
        self._write(trainer)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.sleep_s:
            time.sleep(self.sleep_s)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not self.saved_grads and trainer.is_global_zero:
            grads = {
                n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None
            }
            torch.save(grads, self.out / "grads_step1.pt")
            self.saved_grads = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        metric = trainer.callback_metrics.get("train/loss")
        if metric is not None:
            self.losses[trainer.global_step] = float(metric)
            self._write(trainer)
        if trainer.global_rank == self.stall_rank and self.stall_s:
            time.sleep(self.stall_s)  # runs before GenerationEval's hook: this rank arrives late
            self.stall_s = 0.0


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    out.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(0)
    recorder = Recorder(
        out, float(job.get("sleep_s", 0.0)), int(job.get("stall_rank", -1)), float(job.get("stall_s", 0.0))
    )
    callbacks: list[pl.Callback] = [recorder]
    evaluator = None
    if job.get("eval_every", 0):
        task = CountdownTask(num_problems=4, num_numbers=(3,), max_tokens=6, temperature=0.0)
        evaluator = GenerationEval(
            [task],
            backend=HFBackend(batch_size=1),
            every_n_steps=job["eval_every"],
            at_start=False,
            at_end=True,
            eval_ranks=job.get("eval_ranks", "rank0"),
            on_error="raise",
            barrier_timeout_s=float(job.get("barrier_timeout_s", 120)),
        )
        callbacks.append(evaluator)
    if job.get("ckpt_every", 0):
        callbacks.append(
            ModelCheckpoint(dirpath=out / "ckpt", every_n_train_steps=job["ckpt_every"], save_top_k=-1)
        )
    data = SFTDataModule(
        CountdownRegime(train_size=job.get("train_size", 16), num_numbers=(3,), max_attempts=1),
        tokenizer=job["model"],
        micro_batch_size=job["micro_batch_size"],
        global_batch_size=job["global_batch_size"],
        max_length=512,
        shuffle=True,
    )
    strategy: object = "ddp" if job["devices"] * job.get("num_nodes", 1) > 1 else "auto"
    if job.get("strategy") == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        from sftlab.distributed import decoder_layer_policy

        strategy = FSDPStrategy(
            auto_wrap_policy=decoder_layer_policy, activation_checkpointing_policy=decoder_layer_policy
        )
    elif job.get("strategy") == "deepspeed_stage_3":
        strategy = "deepspeed_stage_3"
    trainer = pl.Trainer(
        accelerator=job.get("accelerator", "cpu"),
        strategy=strategy,
        devices=job["devices"],
        num_nodes=job.get("num_nodes", 1),
        max_steps=job["max_steps"],
        precision=job.get("precision", "32-true"),
        logger=CSVLogger(out, name="", version=""),
        log_every_n_steps=1,
        callbacks=callbacks,
        enable_checkpointing=bool(job.get("ckpt_every", 0)),
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=out,
    )
    module = SFTModule(model_name=job["model"], learning_rate=1e-3, warmup_ratio=0.0)
    trainer.fit(module, datamodule=data, ckpt_path=job.get("ckpt_path"))
    if trainer.is_global_zero:
        result = {
            "world_size": trainer.world_size,
            "losses": recorder.losses,
            "history": evaluator.history if evaluator is not None else [],
            "global_step": trainer.global_step,
        }
        (out / "result.json").write_text(json.dumps(result))
        if job.get("save_final"):
            torch.save(module.model.state_dict(), out / "final_model.pt")


if __name__ == "__main__":
    main(sys.argv[1])
