"""SFTModule: supervised fine-tuning of a Hugging Face causal LM on assistant tokens.

The loss of one optimizer step is the mean over *all* target tokens of that step: every micro-batch of
gradient accumulation on every rank (torchtune's normalisation). Per-micro-batch means would weight a
short response's tokens more than a long one's, which matters for long-CoT data. `loss_reduction="paper"`
reproduces the arXiv 2604.06628 trainer instead: per-micro-batch token means, summed over a rank's
micro-batches, averaged over ranks (so the loss scale depends on GPU count).
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from sftlab.data.batching import Batch
from sftlab.data.formatting import IGNORE_INDEX
from sftlab.models import resolve_model

LossReduction = Literal["step_token_mean", "paper"]


def warmup_cosine(
    step: int, *, total_steps: int, warmup_steps: int, min_ratio: float, schedule: str
) -> float:
    """LR multiplier: linear warm-up from 0, then cosine decay to `min_ratio` (or constant)."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant":
        return 1.0
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class SFTModule(pl.LightningModule):
    """Full-parameter SFT of a causal LM.

    Args:
        model_name: built-in name (`smollm2-135m-instruct`), local HF folder or hub id.
        learning_rate: peak AdamW learning rate (paper: 5e-5).
        weight_decay: AdamW weight decay on matrices (paper: 0.01); norms and biases get none.
        betas: AdamW betas.
        warmup_ratio: share of all optimizer steps spent warming up linearly (paper: 0.1).
        lr_schedule: "cosine" decay after warm-up (paper) or "constant" (the over-fitting stress runs).
        min_lr_ratio: cosine floor as a share of the peak LR.
        loss_reduction: "step_token_mean" (correct default) or "paper" (see module docstring).
        gradient_checkpointing: recompute activations in backward to save memory.
        attn_implementation: transformers attention backend ("sdpa", "eager", "flash_attention_2").
        model_dtype: dtype of the weights. "float32" with Lightning's `bf16-mixed` precision is the usual
            mixed-precision setup; "bfloat16" stores the weights in bf16 (pure bf16 training).
        seed_init: seed for initialising weights when `random_init` is set.
        random_init: build the architecture from the config with random weights (benchmarks, tests).
    """

    def __init__(
        self,
        model_name: str = "smollm2-135m-instruct",
        learning_rate: float = 5e-5,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_ratio: float = 0.1,
        lr_schedule: Literal["cosine", "constant"] = "cosine",
        min_lr_ratio: float = 0.0,
        loss_reduction: LossReduction = "step_token_mean",
        gradient_checkpointing: bool = False,
        attn_implementation: str = "sdpa",
        model_dtype: Literal["float32", "bfloat16"] = "float32",
        random_init: bool = False,
        seed_init: int = 0,
    ) -> None:
        super().__init__()
        problems = []
        if learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got learning_rate={learning_rate}")
        if not 0 <= warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got warmup_ratio={warmup_ratio}")
        if not 0 <= min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1], got min_lr_ratio={min_lr_ratio}")
        if problems:
            raise ValueError("; ".join(problems))
        self.save_hyperparameters()
        self.model_name = model_name
        self.model_path = resolve_model(model_name)
        self.model: Any = None
        self._step_clock: float | None = None
        self._step_tokens = torch.zeros(3, dtype=torch.float64)  # real, padded-total, loss-sum
        self._step_loss_sum = 0.0
        self._step_targets = 0

    # -- model -----------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.model is not None:
            return
        from transformers import AutoConfig, AutoModelForCausalLM

        dtype = getattr(torch, self.hparams.model_dtype)
        kwargs = {"attn_implementation": self.hparams.attn_implementation, "dtype": dtype}
        if self.hparams.random_init:
            config = AutoConfig.from_pretrained(self.model_path)
            torch.manual_seed(self.hparams.seed_init)
            self.model = AutoModelForCausalLM.from_config(config, **kwargs)
        else:
            self.model = AutoModelForCausalLM.from_pretrained(self.model_path, **kwargs)
        self.model.config.use_cache = False
        self.model.train()
        if self.hparams.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})

    def forward(self, batch: Batch) -> torch.Tensor:
        # use_cache=False is required for packed batches: with it transformers builds the block-diagonal
        # mask from position_ids on sdpa/eager (DESIGN.md "Packing pitfall").
        out = self.model(
            input_ids=batch["input_ids"],
            attention_mask=batch["attention_mask"],
            position_ids=batch["position_ids"],
            use_cache=False,
        )
        return out.logits

    def summed_loss(self, batch: Batch) -> torch.Tensor:
        """Sum of token cross-entropies over the micro-batch's targets (labels are pre-shifted)."""
        logits = self(batch)
        return F.cross_entropy(
            logits.float().flatten(0, 1),
            batch["labels"].flatten(),
            ignore_index=IGNORE_INDEX,
            reduction="sum",
        )

    # -- training --------------------------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        if self._step_clock is None:
            self._step_clock = time.perf_counter()
        loss_sum = self.summed_loss(batch)
        world = self.trainer.world_size
        accum = self.trainer.accumulate_grad_batches
        step_targets = self.trainer.strategy.reduce(
            torch.tensor(float(batch["step_target_tokens"]), device=self.device), reduce_op="sum"
        )
        global_targets = max(float(step_targets), 1.0)
        self._step_loss_sum += float(loss_sum.detach())
        self._step_targets = int(global_targets)
        self._step_tokens[0] += batch["num_real_tokens"]
        self._step_tokens[1] += batch["input_ids"].numel()
        # Lightning divides the returned loss by `accum`, DDP averages gradients over ranks: undo both so
        # the gradient is d(sum of token losses of the step) / (target tokens of the step).
        if self.hparams.loss_reduction == "step_token_mean":
            return loss_sum * (world * accum / global_targets)
        return loss_sum / max(batch["num_target_tokens"], 1) * accum

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        params = [p.grad for p in self.parameters() if p.grad is not None]
        grad_norm = torch.nn.utils.get_total_norm(params, norm_type=2.0) if params else torch.tensor(0.0)
        real, total = self._reduce_step_counts()
        elapsed = time.perf_counter() - (self._step_clock or time.perf_counter())
        # Local loss sums are gathered so the logged loss is the global token mean of the step.
        loss_sum = float(
            self.trainer.strategy.reduce(
                torch.tensor(self._step_loss_sum, device=self.device), reduce_op="sum"
            )
        )
        metrics = {
            "train/loss": loss_sum / max(self._step_targets, 1),
            "train/grad_norm": float(grad_norm),
            "train/lr": optimizer.param_groups[0]["lr"],
            "train/tokens_per_s": real / elapsed if elapsed > 0 else 0.0,
            "train/padding_share": 1.0 - real / total if total else 0.0,
            "train/target_tokens": float(self._step_targets),
        }
        self.log_dict(
            metrics, on_step=True, on_epoch=False, prog_bar=False, rank_zero_only=True, sync_dist=False
        )
        self.log("loss", metrics["train/loss"], prog_bar=True, logger=False, on_step=True, on_epoch=False)
        self._step_loss_sum = 0.0
        self._step_tokens.zero_()
        self._step_clock = None

    def _reduce_step_counts(self) -> tuple[float, float]:
        counts = self._step_tokens[:2].clone().to(self.device, torch.float32)
        counts = self.trainer.strategy.reduce(counts, reduce_op="sum")
        return float(counts[0]), float(counts[1])

    # -- validation: teacher-forced loss on held-out examples ------------------------------------------
    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        loss_sum = self.summed_loss(batch)
        self.log(
            "val/loss",
            loss_sum / max(batch["num_target_tokens"], 1),
            batch_size=batch["num_sequences"],
            sync_dist=True,
        )

    # -- optimisation ----------------------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if param.ndim < 2 or "norm" in name.lower() else decay).append(param)
        groups = [
            {"params": decay, "weight_decay": self.hparams.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ]
        fused = self.device.type == "cuda"
        optimizer = torch.optim.AdamW(
            groups, lr=self.hparams.learning_rate, betas=self.hparams.betas, fused=fused
        )
        total = max(1, int(self.trainer.estimated_stepping_batches))
        warmup = int(round(self.hparams.warmup_ratio * total))
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer,
            lambda step: warmup_cosine(
                step,
                total_steps=total,
                warmup_steps=warmup,
                min_ratio=self.hparams.min_lr_ratio,
                schedule=self.hparams.lr_schedule,
            ),
        )
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
