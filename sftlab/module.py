"""SFTModule: supervised fine-tuning of a Hugging Face causal LM on assistant tokens.

The loss of one optimizer step is the mean over *all* target tokens of that step: every micro-batch of
gradient accumulation on every rank (torchtune's normalisation). Per-micro-batch means would weight a
short response's tokens more than a long one's, which matters for long-CoT data. `loss_reduction="paper"`
reproduces the arXiv 2604.06628 trainer instead: per-micro-batch token means, summed over a rank's
micro-batches, averaged over ranks (so the loss scale depends on GPU count).

Speed: packed micro-batches are one row with per-sequence position ids and no attention mask. With
`attn_implementation: flash_attention_2` transformers turns those position ids into varlen FlashAttention
boundaries (no mask, no padding, no cross-sequence attention). With sdpa/eager it falls back to a
block-diagonal mask built from the position ids, which it only does when the model is called with
`use_cache=False` (DESIGN.md "Packing pitfall"); that costs O(S^2) mask memory and dense attention over
the masked blocks, so prefer FlashAttention on GPU. `fused_linear_cross_entropy` never materialises the
[tokens x vocab] logits (Liger kernel); `compile` compiles each decoder layer. `train/mfu` follows
`sftlab.flops` (6N + causal attention FLOPs per token).
"""

from __future__ import annotations

import math
import time
from typing import Any, Literal

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from sftlab.data.batching import Batch, target_positions
from sftlab.data.formatting import IGNORE_INDEX
from sftlab.distributed import deepspeed_config, grad_norm, offloads_optimizer, zero_stage
from sftlab.flops import FlopsModel, flops_model_of, mfu, peak_flops
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
        fused_linear_cross_entropy: compute the loss from the last hidden state and `lm_head.weight` in
            chunks with Liger's fused kernel, so the full logits are never materialised (large vocabularies
            at 16k+ tokens). CUDA only; `pip install liger-kernel`.
        compile: `torch.compile` each decoder layer (regional compilation: short compile times, works
            with activation checkpointing and FSDP units).
        peak_flops: peak FLOP/s of one device for `train/mfu`; None = looked up from the GPU's name (H100,
            H200, A100, ...; bf16 dense), and no MFU where unknown (CPU).
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
        fused_linear_cross_entropy: bool = False,
        compile: bool = False,
        peak_flops: float | None = None,
    ) -> None:
        super().__init__()
        problems = []
        if learning_rate <= 0:
            problems.append(f"learning_rate must be > 0, got learning_rate={learning_rate}")
        if not 0 <= warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), got warmup_ratio={warmup_ratio}")
        if not 0 <= min_lr_ratio <= 1:
            problems.append(f"min_lr_ratio must be in [0, 1], got min_lr_ratio={min_lr_ratio}")
        if peak_flops is not None and peak_flops <= 0:
            problems.append(f"peak_flops must be > 0 FLOP/s or null, got peak_flops={peak_flops}")
        if problems:
            raise ValueError("; ".join(problems))
        self.save_hyperparameters()
        self.model_name = model_name
        self.model_path = resolve_model(model_name)
        self.model: Any = None
        self.flops: FlopsModel | None = None
        self._fused_loss: Any = None
        self._peak: float | None = None
        self._hf_deepspeed: Any = None  # transformers' ZeRO-3 switch, alive while the model is built
        self._step_clock: float | None = None
        # Per-step accumulators, reduced once per optimizer step: real tokens, padded-total tokens, FLOPs.
        self._step_counts = [0.0, 0.0, 0.0]
        self._step_loss_sum: torch.Tensor | None = None  # a tensor: no host sync per micro-batch
        self._step_targets = 0

    def setup(self, stage: str) -> None:
        if self.hparams.fused_linear_cross_entropy:
            from lightning.pytorch.accelerators import CUDAAccelerator

            if not isinstance(self.trainer.accelerator, CUDAAccelerator):
                raise ValueError(
                    "model.fused_linear_cross_entropy=true needs a CUDA GPU (Liger's Triton kernels); got "
                    f"accelerator {type(self.trainer.accelerator).__name__}. Set it to false on CPU."
                )

    # -- model -----------------------------------------------------------------------------------------
    def configure_model(self) -> None:
        if self.model is not None:
            return
        from transformers import AutoConfig, AutoModelForCausalLM

        dtype = getattr(torch, self.hparams.model_dtype)
        kwargs = {"attn_implementation": self.hparams.attn_implementation, "dtype": dtype}
        if self._trainer is not None and zero_stage(self._trainer) == 3:
            # Lightning calls configure_model inside deepspeed.zero.Init for ZeRO-3, so parameters are
            # partitioned as they are created. transformers must know, or from_pretrained writes the
            # checkpoint into empty partitions; HfDeepSpeedConfig (kept alive) makes it gather per layer.
            from transformers.integrations import HfDeepSpeedConfig

            self._hf_deepspeed = HfDeepSpeedConfig(deepspeed_config(self._trainer))
        if self.hparams.random_init:
            config = AutoConfig.from_pretrained(self.model_path)
            torch.manual_seed(self.hparams.seed_init)
            self.model = AutoModelForCausalLM.from_config(config, **kwargs)
        else:
            self.model = AutoModelForCausalLM.from_pretrained(self.model_path, **kwargs)
        self.model.config.use_cache = False
        self.model.train()
        self.flops = flops_model_of(self.model)
        if self.hparams.gradient_checkpointing:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if self.hparams.fused_linear_cross_entropy:
            self._fused_loss = _liger_loss()
        if self.hparams.compile:
            for layer in decoder_layers(self.model):
                layer.compile()

    def _model_inputs(self, batch: Batch) -> dict[str, Any]:
        # Packed batches carry no attention mask: FlashAttention-2 reads the sequence boundaries from the
        # position ids (varlen), sdpa/eager build a block-diagonal mask from them, which needs
        # use_cache=False (DESIGN.md "Packing pitfall").
        inputs = {"input_ids": batch["input_ids"], "position_ids": batch["position_ids"], "use_cache": False}
        if batch["attention_mask"] is not None:
            inputs["attention_mask"] = batch["attention_mask"]
        elif self.hparams.attn_implementation.startswith("flash_attention") and batch.get("sequence_lengths"):
            # Hand FlashAttention the varlen boundaries, known on the host: otherwise transformers derives
            # them from position_ids on the device, with a device-to-host sync in every layer.
            lengths = batch["sequence_lengths"]
            bounds = torch.tensor([0, *lengths], dtype=torch.int32).cumsum(0, dtype=torch.int32)
            inputs["cu_seq_lens_q"] = inputs["cu_seq_lens_k"] = bounds.to(self.device, non_blocking=True)
            inputs["max_length_q"] = inputs["max_length_k"] = max(lengths)
        return inputs

    def forward(self, batch: Batch) -> torch.Tensor:
        return self.model(**self._model_inputs(batch)).logits

    def summed_loss(self, batch: Batch) -> torch.Tensor:
        """Sum of token cross-entropies over the micro-batch's targets (labels are pre-shifted).

        Only the positions where some row has a target go through `lm_head` (transformers' `logits_to_keep`
        with indices): a packed row's targets exactly, a padded batch's span after its shortest prompt.
        Prompt tokens and each sequence's last token predict nothing, so their [vocab]-wide logits, softmax
        and gradients are skipped; same loss, less compute and memory."""
        if self._fused_loss is not None:
            return self._summed_loss_fused(batch)
        # SFTDataModule finds the positions on the host; other loaders pay a device sync here.
        positions = batch.get("target_positions")
        if positions is None:
            positions = target_positions(batch)
        labels = batch["labels"]
        if positions is not None:
            positions = positions.to(labels.device, non_blocking=True)
            logits = self.model(**self._model_inputs(batch), logits_to_keep=positions).logits
            labels = labels.index_select(1, positions)
        else:
            logits = self(batch)
        return F.cross_entropy(
            logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )

    def _summed_loss_fused(self, batch: Batch) -> torch.Tensor:
        # The decoder's last hidden state and the output projection go into Liger's kernel together; it
        # computes the loss (and the gradients of both) chunk by chunk, never the full logits.
        decoder = getattr(self.model, self.model.base_model_prefix)
        hidden = decoder(**self._model_inputs(batch)).last_hidden_state
        head = self.model.get_output_embeddings()
        if hasattr(head.weight, "ds_id"):
            raise ValueError(
                "model.fused_linear_cross_entropy does not work with DeepSpeed ZeRO-3 (lm_head.weight is "
                "partitioned outside its module's forward); use FSDP or ZeRO-2, or turn it off"
            )
        labels = batch["labels"]
        positions = batch.get("target_positions")
        if positions is not None:  # only the positions holding targets go through the kernel
            positions = positions.to(labels.device, non_blocking=True)
            hidden, labels = hidden.index_select(1, positions), labels.index_select(1, positions)
        hidden, labels = hidden.flatten(0, 1), labels.flatten()
        return self._fused_loss(head.weight, hidden, labels, getattr(head, "bias", None))

    # -- training --------------------------------------------------------------------------------------
    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        if self._step_clock is None:
            self._step_clock = time.perf_counter()
        loss_sum = self.summed_loss(batch)
        world = self.trainer.world_size
        accum = self.trainer.accumulate_grad_batches
        global_targets = float(batch.get("global_step_target_tokens") or 0)
        if not global_targets:
            # The loader did not state the step's global target count: one all-reduce (and host sync).
            global_targets = float(
                self.trainer.strategy.reduce(
                    torch.tensor(float(batch["step_target_tokens"]), device=self.device), reduce_op="sum"
                )
            )
        global_targets = max(global_targets, 1.0)
        detached = loss_sum.detach().double()
        self._step_loss_sum = detached if self._step_loss_sum is None else self._step_loss_sum + detached
        self._step_targets = int(global_targets)
        self._step_counts[0] += batch["num_real_tokens"]
        self._step_counts[1] += batch["input_ids"].numel()
        if self.flops is not None:
            flops = self.flops.flops(batch.get("sequence_lengths") or [batch["num_real_tokens"]])
            positions = batch.get("target_positions")
            # lm_head ran on the target columns only (right padding: the skipped positions are real tokens)
            if positions is not None:
                skipped = batch["input_ids"].numel() - batch["input_ids"].shape[0] * positions.numel()
                flops -= self.flops.head_flops_per_token() * skipped
            self._step_counts[2] += flops
        # Lightning divides the returned loss by `accum`, DDP averages gradients over ranks: undo both so
        # the gradient is d(sum of token losses of the step) / (target tokens of the step).
        if self.hparams.loss_reduction == "step_token_mean":
            return loss_sum * (world * accum / global_targets)
        return loss_sum / max(batch["num_target_tokens"], 1) * accum

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        norm = grad_norm(self)  # syncs the device: the step's backward has finished when it returns
        elapsed = time.perf_counter() - (self._step_clock or time.perf_counter())
        # One all-reduce for everything: loss sum (global token mean), real/total tokens, FLOPs.
        loss_sum = (
            self._step_loss_sum if self._step_loss_sum is not None else torch.zeros((), dtype=torch.float64)
        )
        local = torch.cat(
            [
                loss_sum.reshape(1).to(self.device),
                torch.tensor(self._step_counts, dtype=torch.float64, device=self.device),
            ]
        )
        total = self.trainer.strategy.reduce(local, reduce_op="sum").tolist()
        loss_sum_all, real, padded, flops = total
        metrics = {
            "train/loss": loss_sum_all / max(self._step_targets, 1),
            "train/lr": optimizer.param_groups[0]["lr"],
            "train/tokens_per_s": real / elapsed if elapsed > 0 else 0.0,
            "train/padding_share": 1.0 - real / padded if padded else 0.0,
            "train/target_tokens": float(self._step_targets),
        }
        if norm is not None:
            metrics["train/grad_norm"] = norm
        if self._peak is None:
            self._peak = self.hparams.peak_flops or peak_flops(self.device) or 0.0
        utilisation = mfu(flops, elapsed, self.trainer.world_size, self._peak)
        if utilisation is not None:
            metrics["train/mfu"] = utilisation
        self.log_dict(
            metrics, on_step=True, on_epoch=False, prog_bar=False, rank_zero_only=True, sync_dist=False
        )
        self.log("loss", metrics["train/loss"], prog_bar=True, logger=False, on_step=True, on_epoch=False)
        self._step_loss_sum = None
        self._step_counts = [0.0, 0.0, 0.0]
        self._step_clock = None

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
        if offloads_optimizer(self.trainer):
            # ZeRO-Offload steps the optimizer on the CPU; DeepSpeed refuses torch's AdamW there.
            from deepspeed.ops.adam import DeepSpeedCPUAdam

            optimizer = DeepSpeedCPUAdam(
                groups, lr=self.hparams.learning_rate, betas=self.hparams.betas, adamw_mode=True
            )
        else:
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


def decoder_layers(model: Any) -> list[torch.nn.Module]:
    """The model's repeated blocks: modules whose class transformers names in `_no_split_modules`
    (`LlamaDecoderLayer`, `Qwen3DecoderLayer`, ...), the unit for compilation, FSDP wrapping and
    activation checkpointing."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"{type(model).__name__} names no decoder layer class in _no_split_modules")
    return layers


def _liger_loss() -> Any:
    try:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss
    except ImportError as exc:
        raise ImportError(
            "model.fused_linear_cross_entropy=true needs Liger kernels: pip install liger-kernel"
        ) from exc
    return LigerFusedLinearCrossEntropyLoss(ignore_index=IGNORE_INDEX, reduction="sum")
