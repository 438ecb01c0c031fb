"""SFTDataModule: examples from a data regime -> tokenized, length-checked -> planned micro-batches.

Every data regime goes through this one module. It owns the schedule in sequences (`global_batch_size`,
accumulation derived from world size and micro batch), the over-length policy (drop and count by
default, never truncate), and the batch mode (padded or packed padding-free).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Literal

import lightning.pytorch as pl
from torch.utils.data import DataLoader, IterableDataset

from sftlab.data.batching import Batch, BatchMode, collate, target_positions
from sftlab.data.example import DataError
from sftlab.data.formatting import TokenizedExample, tokenize_example
from sftlab.data.regime import DataRegime
from sftlab.data.schedule import accumulation_steps, epoch_order, plan_epoch, subset_indices

log = logging.getLogger(__name__)


class StepPlannedDataset(IterableDataset):
    """Yields this rank's micro-batches for one epoch per `iter()`, in optimizer-step order.

    Each micro-batch carries `step_target_tokens`, the target count of its whole step on this rank, and
    `global_step_target_tokens`, the same over all ranks (every rank can plan every rank's share, so no
    collective is needed for the token-mean loss).

    Position: the dataset counts the micro-batches it has handed out since training began, across epochs;
    `iter()` continues from there (epoch = position // micro-batches per epoch), so an epoch that
    Lightning stops after `len(dataset)` batches (it never exhausts a loader with a length) still moves
    the next `iter()` to the next epoch's order. `state_dict`/`load_state_dict` save and restore it; a
    resumed run skips exactly the micro-batches already trained on, without collating them.
    """

    def __init__(
        self,
        examples: list[TokenizedExample],
        *,
        mode: BatchMode,
        pad_token_id: int,
        global_batch_size: int,
        micro_batch_size: int,
        world_size: int,
        rank: int,
        shuffle: bool,
        seed: int,
    ) -> None:
        self.examples = examples
        self.mode = mode
        self.pad_token_id = pad_token_id
        self.global_batch_size = global_batch_size
        self.micro_batch_size = micro_batch_size
        self.world_size = world_size
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.accumulation = accumulation_steps(global_batch_size, micro_batch_size, world_size)
        self.position = 0  # micro-batches handed out since training began, all epochs
        plan = self._make_plan(epoch_order(len(examples), 0, seed, shuffle))
        if not plan.steps:
            raise DataError(
                f"{len(examples)} training examples make no complete global batch of {global_batch_size} "
                "sequences; lower data.global_batch_size or add data"
            )
        self._steps_per_epoch = len(plan.steps)
        self._dropped = plan.dropped_examples

    def _make_plan(self, order: list[int]):
        return plan_epoch(
            order,
            global_batch_size=self.global_batch_size,
            micro_batch_size=self.micro_batch_size,
            world_size=self.world_size,
            rank=self.rank,
        )

    @property
    def steps_per_epoch(self) -> int:
        return self._steps_per_epoch

    @property
    def dropped_per_epoch(self) -> int:
        return self._dropped

    def __len__(self) -> int:
        return self._steps_per_epoch * self.accumulation

    @property
    def epoch(self) -> int:
        return self.position // len(self)

    def __iter__(self) -> Iterator[Batch]:
        epoch, skip = divmod(self.position, len(self))
        order = epoch_order(len(self.examples), epoch, self.seed, self.shuffle)
        plan = self._make_plan(order)
        targets = [ex.num_targets for ex in self.examples]
        gbs = self.global_batch_size
        for s, step in enumerate(plan.steps):
            if skip >= len(step):  # a whole step already trained on: skip it without collating
                skip -= len(step)
                continue
            global_targets = sum(targets[i] for i in order[s * gbs : (s + 1) * gbs])
            step_examples = [[self.examples[i] for i in micro] for micro in step]
            step_targets = sum(ex.num_targets for micro in step_examples for ex in micro)
            for micro in step_examples[skip:]:
                # Counted when handed out: Lightning fetches a loader with a length one batch per
                # training step (no prefetch), so at a checkpoint the count is what was trained on.
                self.position += 1
                batch = collate(
                    micro,
                    self.mode,
                    self.pad_token_id,
                    step_target_tokens=step_targets,
                    global_step_target_tokens=global_targets,
                )
                # Found on the host: the module projects only these columns through lm_head.
                batch["target_positions"] = target_positions(batch)  # type: ignore[typeddict-unknown-key]
                yield batch
            skip = 0

    def state_dict(self) -> dict[str, int]:
        epoch, consumed = divmod(self.position, len(self))
        return {
            "epoch": epoch,
            "consumed": consumed,
            "accumulation": self.accumulation,
            "global_batch_size": self.global_batch_size,
        }

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, consumed = int(state["epoch"]), int(state["consumed"])
        saved_gbs = int(state.get("global_batch_size", self.global_batch_size))
        if saved_gbs != self.global_batch_size:
            raise DataError(
                f"the checkpoint was trained with data.global_batch_size={saved_gbs}, this run has "
                f"{self.global_batch_size}; resume with the same global batch size"
            )
        saved_accum = int(state.get("accumulation", self.accumulation))
        if saved_accum != self.accumulation:
            # Another world size or micro batch: positions convert through whole optimizer steps.
            steps, rest = divmod(consumed, saved_accum)
            if rest:
                raise DataError(
                    f"the checkpoint stopped {rest} micro-batches into an optimizer step of {saved_accum}; it "
                    "can only resume with the same world size and data.micro_batch_size"
                )
            consumed = steps * self.accumulation
        self.position = epoch * len(self) + consumed


def _identity(batch: list[Batch]) -> Batch:
    return batch[0]


class SFTDataModule(pl.LightningDataModule):
    """Tokenizes a data regime with the model's chat template and serves step-planned micro-batches.

    Args:
        regime: the data regime (class_path), e.g. `sftlab.data.countdown_regime.CountdownRegime`.
        tokenizer: tokenizer path/hub id/built-in name; linked from `model.model_name` by the CLI.
        batch_mode: "packed" (padding-free, sequences concatenated) or "padded" (the paper's setting).
        micro_batch_size: sequences per forward pass per device.
        global_batch_size: sequences per optimizer step over all devices; accumulation is derived.
        max_length: longest sequence in tokens (prompt + response + EOS).
        on_overlength: "drop" (count and report) or "error". Sequences are never truncated.
        num_samples: train on a deterministic seeded subset of this many rows (None: all).
        shuffle: reshuffle every epoch (seeded by seed and epoch); off = data order (the paper).
        seed: seed for subset choice and shuffling.
        eval_examples: validation examples scored by teacher-forced loss (`val/loss`); 0 disables.
    """

    def __init__(
        self,
        regime: DataRegime,
        tokenizer: str = "smollm2-135m-instruct",
        batch_mode: BatchMode = "packed",
        micro_batch_size: int = 4,
        global_batch_size: int = 16,
        max_length: int = 2048,
        on_overlength: Literal["drop", "error"] = "drop",
        num_samples: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        eval_examples: int = 0,
    ) -> None:
        super().__init__()
        problems = []
        if max_length < 8:
            problems.append(f"max_length must be >= 8, got max_length={max_length}")
        if micro_batch_size < 1:
            problems.append(f"micro_batch_size must be >= 1, got micro_batch_size={micro_batch_size}")
        if global_batch_size < 1:
            problems.append(f"global_batch_size must be >= 1, got global_batch_size={global_batch_size}")
        if problems:
            raise ValueError("; ".join(problems))
        self.save_hyperparameters(ignore=["regime"])
        self.regime = regime
        self.tokenizer_name = tokenizer
        self.batch_mode = batch_mode
        self.micro_batch_size = micro_batch_size
        self.global_batch_size = global_batch_size
        self.max_length = max_length
        self.on_overlength = on_overlength
        self.num_samples = num_samples
        self.shuffle = shuffle
        self.seed = seed
        self.eval_examples = eval_examples
        self.stats: dict[str, int] = {}
        self._tokenizer: Any = None
        self._train: StepPlannedDataset | None = None
        self._val: list[TokenizedExample] = []
        self._pending_state: dict[str, int] | None = None

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from sftlab.models import resolve_model

            self._tokenizer = AutoTokenizer.from_pretrained(resolve_model(self.tokenizer_name))
        return self._tokenizer

    def tokenize(
        self, split: str, limit: int | None = None, subset_seed: int | None = None
    ) -> list[TokenizedExample]:
        """Load, subset and tokenize one split; over-length examples are dropped and counted (or raise)."""
        examples = self.regime.load(split)  # type: ignore[arg-type]
        keep = subset_indices(len(examples), limit, self.seed if subset_seed is None else subset_seed)
        tokenized, too_long = [], []
        for i in keep:
            item = tokenize_example(examples[i], self.tokenizer)
            if len(item) > self.max_length:
                too_long.append((examples[i].source or f"{split}[{i}]", len(item)))
                continue
            tokenized.append(item)
        if too_long and self.on_overlength == "error":
            shown = ", ".join(f"{src} ({n} tokens)" for src, n in too_long[:5])
            raise DataError(
                f"{len(too_long)} {split} examples exceed max_length={self.max_length}: {shown}; raise "
                "data.max_length or set data.on_overlength=drop"
            )
        self.stats[f"{split}_rows"] = len(keep)
        self.stats[f"{split}_dropped_overlength"] = len(too_long)
        if too_long:
            log.warning(
                "dropped %d of %d %s examples longer than max_length=%d (never truncated)",
                len(too_long),
                len(keep),
                split,
                self.max_length,
            )
        if not tokenized:
            raise DataError(f"no {split} examples left after dropping {len(too_long)} over-length ones")
        return tokenized

    def world(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 1, 0
        return trainer.world_size, trainer.global_rank

    @property
    def accumulation(self) -> int:
        world_size, _ = self.world()
        return accumulation_steps(self.global_batch_size, self.micro_batch_size, world_size)

    def setup(self, stage: str) -> None:
        world_size, rank = self.world()
        accum = accumulation_steps(self.global_batch_size, self.micro_batch_size, world_size)
        trainer = self.trainer
        if stage == "fit" and self._train is None:
            if trainer is not None:
                configured = trainer.accumulate_grad_batches
                if configured not in (1, accum):
                    raise ValueError(
                        f"trainer.accumulate_grad_batches={configured} conflicts with data.global_batch_size="
                        f"{self.global_batch_size} / (micro_batch_size={self.micro_batch_size} x world_size="
                        f"{world_size}) = {accum}; remove trainer.accumulate_grad_batches (it is derived)"
                    )
                trainer.accumulate_grad_batches = accum
            train = self.tokenize("train", self.num_samples)
            self._train = StepPlannedDataset(
                train,
                mode=self.batch_mode,
                pad_token_id=self._pad_id(),
                global_batch_size=self.global_batch_size,
                micro_batch_size=self.micro_batch_size,
                world_size=world_size,
                rank=rank,
                shuffle=self.shuffle,
                seed=self.seed,
            )
            self.stats["train_dropped_incomplete_batch_per_epoch"] = self._train.dropped_per_epoch
            if self._train.dropped_per_epoch:
                log.warning(
                    "the last %d training examples of each epoch do not fill a global batch of %d and are not visited",
                    self._train.dropped_per_epoch,
                    self.global_batch_size,
                )
            if self._pending_state is not None:
                self._train.load_state_dict(self._pending_state)
                self._pending_state = None
        if stage in ("fit", "validate") and self.eval_examples and not self._val:
            self._val = self.tokenize("validation", self.eval_examples)

    def _pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id

    @property
    def steps_per_epoch(self) -> int:
        return self._train.steps_per_epoch if self._train is not None else 0

    def train_dataloader(self) -> DataLoader:
        assert self._train is not None, "setup('fit') has not run"
        return DataLoader(self._train, batch_size=1, collate_fn=_identity, num_workers=0)

    def val_dataloader(self) -> DataLoader | list:
        if not self._val:
            return []
        pad = self._pad_id()
        micro = [
            self._val[i : i + self.micro_batch_size] for i in range(0, len(self._val), self.micro_batch_size)
        ]
        return DataLoader(micro, batch_size=1, collate_fn=lambda b: collate(b[0], self.batch_mode, pad))

    def state_dict(self) -> dict[str, Any]:
        # Lightning saves a datamodule's state in every checkpoint and restores it before the fit loop
        # starts; it does not save a plain DataLoader's or an IterableDataset's own state (only loaders
        # with `state_dict`, e.g. torchdata's StatefulDataLoader). So the position travels from here.
        if self._train is None:
            return {"train_position": None}
        position = self._train.state_dict()
        trainer = self.trainer
        if trainer is not None and trainer.training:
            # The loop's own count of micro-batches trained on this epoch is the ground truth; it equals
            # the dataset's count unless a fetcher prefetched ahead.
            progress = trainer.fit_loop.epoch_loop.batch_progress.current
            position = {**position, "epoch": trainer.current_epoch, "consumed": progress.processed}
        return {"train_position": position}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        position = state_dict.get("train_position")
        if position is None:
            return
        if self._train is not None:
            self._train.load_state_dict(position)
        else:
            self._pending_state = position
