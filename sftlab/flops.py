"""Model FLOPs per token and model-FLOPs utilisation (MFU). Pure: knows nothing about Lightning.

Accounting (PaLM, arXiv 2204.02311 App. B; Chinchilla, arXiv 2203.15556 App. F), training = forward +
backward = 3x the forward pass:

- dense: 6·N FLOPs per token, N = parameters that take part in a matmul: every non-embedding weight plus
  the output projection (`lm_head`, counted even when tied to the input embedding, because the vocabulary
  matmul is computed either way). The embedding lookup is not a matmul and is not counted.
- attention: PaLM's 12·L·H·S per token (L layers, H = heads x head_dim, S = sequence length) counts the
  full S x S score matrix. A causal model computes half of it (FlashAttention skips the masked blocks),
  so sftlab counts `6·L·H·s` per token of a sequence of length s by default (`causal=True`). This is the
  accounting behind DESIGN.md's H100 anchors (Qwen3-1.7B, 14.7k tokens/s at 4k = 17% MFU; 17.4k at 16k =
  28%); `causal=False` gives PaLM's number (higher MFU for the same run).
- packed micro-batches: each sequence pays attention over its own length only, so a micro-batch's
  attention FLOPs are 6·L·H·sum(s_i^2), not 6·L·H·(sum s_i)^2.
- activation checkpointing's recompute is not counted (that would be hardware FLOPs utilisation, HFU).

MFU = model FLOPs of a step / (seconds x devices x peak FLOP/s of one device).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

# Dense bf16 tensor-core peak (no sparsity), from the vendors' data sheets.
PEAK_BF16_FLOPS: dict[str, float] = {
    "H200": 989e12,  # same SXM compute as the H100 (more, faster memory)
    "GH200": 989e12,
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H100": 989e12,  # SXM5; matched after the more specific H100 variants
    "A100": 312e12,
    "A10G": 70e12,
    "L40S": 362e12,
    "L4": 121e12,
}


def peak_flops(device: torch.device | str | None = None) -> float | None:
    """bf16 dense peak FLOP/s of a CUDA device from its name; None on CPU or an unknown GPU (then pass
    `peak_flops` explicitly to get MFU)."""
    device = torch.device(device) if device is not None else None
    if device is None or device.type != "cuda" or not torch.cuda.is_available():
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_FLOPS.items():
        if key in name:
            return value
    return None


@dataclass(frozen=True)
class FlopsModel:
    """The numbers of a decoder-only transformer that its training FLOPs depend on."""

    matmul_params: int  # non-embedding weights + lm_head
    num_layers: int
    attention_width: int  # heads x head_dim (the Q/K/V inner width, not always hidden_size)
    causal: bool = True
    head_params: int = 0  # the lm_head's share of matmul_params

    def dense_flops_per_token(self) -> float:
        return 6.0 * self.matmul_params

    def head_flops_per_token(self) -> float:
        """What skipping the output projection for a token saves (SFTModule skips non-target tokens)."""
        return 6.0 * self.head_params

    def attention_flops(self, sequence_lengths: Sequence[int]) -> float:
        """Training FLOPs of attention scores and weighted sums for sequences of these lengths."""
        per_pair = (6.0 if self.causal else 12.0) * self.num_layers * self.attention_width
        return per_pair * float(sum(s * s for s in sequence_lengths))

    def flops(self, sequence_lengths: Sequence[int]) -> float:
        """Training FLOPs (forward + backward) of a micro-batch of sequences of these lengths."""
        return self.dense_flops_per_token() * sum(sequence_lengths) + self.attention_flops(sequence_lengths)

    def flops_per_token(self, seq_len: int) -> float:
        return self.flops([seq_len]) / seq_len


def flops_model(config: Any, *, causal: bool = True) -> FlopsModel:
    """A FlopsModel from a transformers config (parameters counted on the meta device, no weights)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return flops_model_of(model, causal=causal)


def flops_model_of(model: Any, *, causal: bool = True) -> FlopsModel:
    """A FlopsModel from an instantiated transformers causal LM (any device, including meta)."""
    config = model.config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    embed = model.get_input_embeddings()
    embed_ids = {id(p) for p in embed.parameters()} if embed is not None else set()
    seen: set[int] = set()
    count = 0
    for param in model.parameters():
        if id(param) in seen or id(param) in embed_ids:
            continue
        seen.add(id(param))
        count += _numel(param)
    head = model.get_output_embeddings()
    if head is not None and any(id(p) in embed_ids for p in head.parameters()):
        count += sum(_numel(p) for p in head.parameters() if id(p) in embed_ids)  # tied lm_head
    head_params = sum(_numel(p) for p in head.parameters()) if head is not None else 0
    heads = int(text.num_attention_heads)
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return FlopsModel(
        matmul_params=count,
        num_layers=int(text.num_hidden_layers),
        attention_width=heads * head_dim,
        causal=causal,
        head_params=head_params,
    )


def _numel(param: torch.Tensor) -> int:
    # DeepSpeed ZeRO-3 partitions parameters in place; `ds_numel` is the full size.
    return int(getattr(param, "ds_numel", 0) or param.numel())


def sequence_lengths(position_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> list[int]:
    """Lengths of the sequences in a micro-batch: rows of a padded batch (mask sums), or the runs of a
    packed row (position ids restart at 0 for each sequence)."""
    if attention_mask is not None:
        return [int(n) for n in attention_mask.sum(dim=-1).tolist() if n > 0]
    lengths: list[int] = []
    for row in position_ids.tolist():
        starts = [i for i, p in enumerate(row) if p == 0] + [len(row)]
        lengths.extend(b - a for a, b in zip(starts, starts[1:], strict=False) if b > a)
    return lengths


def mfu(flops: float, seconds: float, num_devices: int, peak: float | None) -> float | None:
    """Model FLOPs utilisation of `flops` done in `seconds` on `num_devices` of `peak` FLOP/s each."""
    if peak is None or peak <= 0 or seconds <= 0 or num_devices < 1:
        return None
    return flops / (seconds * num_devices * peak)
