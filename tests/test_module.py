"""SFTModule: loss normalisation over the optimizer step, packed == padded, LR schedule."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch

from sftlab.data.batching import collate, target_positions
from sftlab.data.datamodule import SFTDataModule
from sftlab.data.example import Example, user_prompt
from sftlab.data.formatting import tokenize_example
from sftlab.module import SFTModule, warmup_cosine

RESPONSES = [
    "<think>Try 3 + 4 = 7. Then 7 * 2 = 14.</think>The answer is \\boxed{14}.",
    "Short.",
    "<think>Long reasoning " + "step " * 40 + "done.</think>\\boxed{2}",
    "<think>Hmm, 5 - 1 = 4.</think>\\boxed{4}",
]


def examples(n: int = 4) -> list[Example]:
    return [
        Example(prompt=user_prompt(f"Question {i}?"), response=RESPONSES[i % 4], source=f"mem:{i}")
        for i in range(n)
    ]


class ListRegime:
    name = "list"

    def __init__(self, items: list[Example]) -> None:
        self.items = items

    def load(self, split: str) -> list[Example]:
        return self.items


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_and_padded_give_the_same_loss(tiny_model: str, tokenizer, attn: str) -> None:
    module = SFTModule(model_name=tiny_model, attn_implementation=attn)
    module.configure_model()
    module.eval()
    tokenized = [tokenize_example(ex, tokenizer) for ex in examples()]
    padded = collate(tokenized, "padded", tokenizer.pad_token_id)
    packed = collate(tokenized, "packed", tokenizer.pad_token_id)
    assert padded["num_target_tokens"] == packed["num_target_tokens"] > 0
    with torch.no_grad():
        loss_padded = module.summed_loss(padded) / padded["num_target_tokens"]
        loss_packed = module.summed_loss(packed) / packed["num_target_tokens"]
        # The same examples one by one: what each sequence's loss must be without any neighbour.
        alone = (
            sum(module.summed_loss(collate([t], "padded", 0)) for t in tokenized)
            / padded["num_target_tokens"]
        )
    # fp32 on CPU: attention over different (but equivalent) masks differs only by rounding.
    assert abs(loss_packed.item() - loss_padded.item()) < 1e-4
    assert abs(loss_packed.item() - alone.item()) < 1e-4


@pytest.mark.parametrize("mode", ["padded", "packed"])
def test_loss_over_target_columns_equals_the_full_logits_loss(tiny_model: str, tokenizer, mode: str) -> None:
    module = SFTModule(model_name=tiny_model)
    module.configure_model()
    module.eval()
    batch = collate([tokenize_example(ex, tokenizer) for ex in examples()], mode, tokenizer.pad_token_id)
    columns = target_positions(batch)
    assert columns is not None and 0 < columns.numel() < batch["labels"].shape[1]  # something is skipped
    with torch.no_grad():
        full = torch.nn.functional.cross_entropy(
            module(batch).float().flatten(0, 1), batch["labels"].flatten(), ignore_index=-100, reduction="sum"
        )
        skipped = module.summed_loss(batch)
    assert abs(skipped.item() - full.item()) < 1e-3 * full.item()


class GradRecorder(pl.Callback):
    def __init__(self) -> None:
        self.grads: list[dict[str, torch.Tensor]] = []
        self.losses: list[float] = []

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.grads.append(
            {n: p.grad.detach().clone() for n, p in pl_module.named_parameters() if p.grad is not None}
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if "train/loss" in trainer.callback_metrics:
            self.losses.append(float(trainer.callback_metrics["train/loss"]))


def one_step(tiny_model: str, micro: int, mode: str, reduction: str = "step_token_mean") -> GradRecorder:
    pl.seed_everything(0)
    recorder = GradRecorder()
    data = SFTDataModule(
        regime=ListRegime(examples()),
        tokenizer=tiny_model,
        batch_mode=mode,
        micro_batch_size=micro,
        global_batch_size=4,
        max_length=512,
        shuffle=False,
    )
    trainer = pl.Trainer(
        max_steps=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[recorder],
        num_sanity_val_steps=0,
    )
    trainer.fit(SFTModule(model_name=tiny_model, loss_reduction=reduction), datamodule=data)
    assert trainer.accumulate_grad_batches == 4 // micro
    return recorder


@pytest.mark.parametrize("mode", ["padded", "packed"])
def test_accumulation_takes_the_token_mean_over_the_whole_step(tiny_model: str, mode: str) -> None:
    whole = one_step(tiny_model, micro=4, mode=mode)
    accumulated = one_step(tiny_model, micro=1, mode=mode)
    assert len(whole.grads) == len(accumulated.grads) == 1
    for name, grad in whole.grads[0].items():
        torch.testing.assert_close(accumulated.grads[0][name], grad, rtol=1e-4, atol=1e-6, msg=name)
    assert whole.losses[-1] == pytest.approx(accumulated.losses[-1], rel=1e-5)


def test_paper_reduction_differs_from_the_token_mean(tiny_model: str) -> None:
    # Responses of very different lengths: a mean of per-micro-batch means is not the token mean.
    token_mean = one_step(tiny_model, micro=1, mode="padded")
    paper = one_step(tiny_model, micro=1, mode="padded", reduction="paper")
    name = next(iter(token_mean.grads[0]))
    ratio = paper.grads[0][name].norm() / token_mean.grads[0][name].norm()
    assert not torch.isclose(ratio, torch.tensor(1.0), rtol=1e-2)


def test_warmup_then_cosine() -> None:
    lrs = [
        warmup_cosine(s, total_steps=10, warmup_steps=2, min_ratio=0.0, schedule="cosine") for s in range(10)
    ]
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    assert lrs[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[2:], lrs[3:], strict=False))
    assert warmup_cosine(5, total_steps=10, warmup_steps=2, min_ratio=0.0, schedule="constant") == 1.0


def test_bad_hyperparameters_are_reported_together(tiny_model: str) -> None:
    with pytest.raises(ValueError, match="learning_rate.*warmup_ratio"):
        SFTModule(model_name=tiny_model, learning_rate=0, warmup_ratio=2)
