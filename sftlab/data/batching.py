"""Collate tokenized examples into one micro-batch, padded or packed padding-free.

- padded: rows padded to the longest sequence, with an attention mask (what the paper did).
- packed: all sequences concatenated into one row with per-sequence position ids restarting at 0 and no
  attention mask. transformers derives sequence boundaries from the position ids (FlashAttention varlen;
  for sdpa/eager a block-diagonal mask, which it only builds when the model is called with
  `use_cache=False`; DESIGN.md "Packing pitfall"). The packed-vs-padded equality test guards this.

Labels are shifted per sequence (see `formatting.shifted_labels`), so no sequence predicts the first
token of the next one. `step_target_tokens` is filled in by the step planner: the number of target
tokens in all micro-batches of the optimizer step this micro-batch belongs to (on this rank), and
`global_step_target_tokens` the same count over all ranks (0 when unknown; the module then all-reduces).
`sequence_lengths` feeds the FLOPs count (attention cost grows with each sequence's own length).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, TypedDict

import torch

from sftlab.data.formatting import IGNORE_INDEX, TokenizedExample, shifted_labels

BatchMode = Literal["padded", "packed"]


class Batch(TypedDict):
    input_ids: torch.Tensor  # [rows, length]
    labels: torch.Tensor  # [rows, length], already shifted; IGNORE_INDEX where no target
    position_ids: torch.Tensor  # [rows, length]
    attention_mask: torch.Tensor | None  # [rows, length] for padded batches, None when packed
    num_sequences: int
    num_real_tokens: int  # tokens that are not padding
    num_target_tokens: int
    step_target_tokens: int
    global_step_target_tokens: int  # over all ranks; 0 = unknown
    sequence_lengths: list[int]


def collate(
    examples: Sequence[TokenizedExample],
    mode: BatchMode,
    pad_token_id: int,
    step_target_tokens: int = 0,
    global_step_target_tokens: int = 0,
) -> Batch:
    if not examples:
        raise ValueError("cannot collate an empty micro-batch")
    if mode == "packed":
        ids = [t for ex in examples for t in ex.input_ids]
        labels = [t for ex in examples for t in shifted_labels(ex)]
        positions = [p for ex in examples for p in range(len(ex))]
        input_ids = torch.tensor([ids], dtype=torch.long)
        label_t = torch.tensor([labels], dtype=torch.long)
        position_ids = torch.tensor([positions], dtype=torch.long)
        attention_mask = None
    elif mode == "padded":
        width = max(len(ex) for ex in examples)
        input_ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
        label_t = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, ex in enumerate(examples):
            n = len(ex)
            input_ids[row, :n] = torch.tensor(ex.input_ids)
            label_t[row, :n] = torch.tensor(shifted_labels(ex))
            attention_mask[row, :n] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
    else:
        raise ValueError(f"unknown batch mode {mode!r}; use 'padded' or 'packed'")
    num_targets = int((label_t != IGNORE_INDEX).sum())
    return Batch(
        input_ids=input_ids,
        labels=label_t,
        position_ids=position_ids,
        attention_mask=attention_mask,
        num_sequences=len(examples),
        num_real_tokens=sum(len(ex) for ex in examples),
        num_target_tokens=num_targets,
        step_target_tokens=step_target_tokens or num_targets,
        global_step_target_tokens=global_step_target_tokens,
        sequence_lengths=[len(ex) for ex in examples],
    )


def target_positions(batch: Batch) -> torch.Tensor | None:
    """Indices of the sequence positions (columns) where any row of the micro-batch has a target: a packed
    row's target tokens exactly; for a padded batch, the span after the shortest prompt. None when every
    position holds a target of some row (nothing to skip)."""
    labels = batch["labels"]
    if labels.dim() != 2:
        return None
    columns = (labels != IGNORE_INDEX).any(dim=0).nonzero().flatten()
    return None if columns.numel() == labels.shape[1] else columns
