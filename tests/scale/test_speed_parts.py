"""The pieces behind speed and scale that need no second process: FLOPs/MFU accounting, prompt sharding,
single-process collectives, the FSDP wrap policy, `train/mfu` logging, compile, and the GPU-only kernels."""

from __future__ import annotations

import importlib.util

import lightning.pytorch as pl
import pytest
import torch

from sftlab.distributed import (
    barrier,
    broadcast_object,
    decoder_layer_policy,
    full_state_dict,
    gather_objects,
)
from sftlab.eval.sharding import ReplayBackend, join_shards, shard_bounds
from sftlab.eval.types import Generation, SamplingConfig
from sftlab.flops import FlopsModel, flops_model, mfu, peak_flops, sequence_lengths


def qwen3_1_7b():
    from transformers import Qwen3Config

    return Qwen3Config(
        hidden_size=2048,
        intermediate_size=6144,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        vocab_size=151936,
        tie_word_embeddings=True,
        max_position_embeddings=40960,
    )


@pytest.mark.parametrize(
    ("seq_len", "tokens_per_s", "design_mfu"),
    [(4096, 14.7e3, 0.17), (16384, 17.4e3, 0.28), (4096, 23.8e3, 0.28), (8192, 23.6e3, 0.31)],
)
def test_flops_reproduce_the_design_anchors(seq_len: int, tokens_per_s: float, design_mfu: float) -> None:
    # DESIGN.md "Performance anchors" (H100, Qwen3-1.7B shape): MFU rounded to whole percent.
    model = flops_model(qwen3_1_7b())
    assert model.matmul_params == 1_720_574_976  # non-embedding weights + the (tied) lm_head matmul
    value = mfu(model.flops_per_token(seq_len) * tokens_per_s, 1.0, 1, 989e12)
    assert value == pytest.approx(design_mfu, abs=0.006)


def test_packed_attention_counts_each_sequence_on_its_own() -> None:
    model = FlopsModel(matmul_params=1000, num_layers=2, attention_width=64)
    assert model.flops([100, 100]) < model.flops([200])
    assert model.flops([100, 100]) == 2 * model.flops([100])
    assert FlopsModel(1000, 2, 64, causal=False).attention_flops([10]) == 2 * model.attention_flops([10])


def test_sequence_lengths_from_packed_position_ids_and_padded_masks() -> None:
    packed = torch.tensor([[0, 1, 2, 0, 1, 0, 1, 2, 3]])
    assert sequence_lengths(packed, None) == [3, 2, 4]
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    assert sequence_lengths(mask.cumsum(-1) - 1, mask) == [3, 2]


def test_no_mfu_without_a_known_peak() -> None:
    assert peak_flops("cpu") is None
    assert mfu(1e12, 1.0, 1, None) is None and mfu(1e12, 0.0, 1, 1e12) is None
    assert mfu(5e11, 1.0, 2, 1e12) == pytest.approx(0.25)


def test_shards_cover_every_prompt_once_in_order() -> None:
    for items, shards in [(7, 3), (2, 4), (0, 2), (8, 2)]:
        bounds = shard_bounds(items, shards)
        assert len(bounds) == shards and bounds[0][0] == 0 and bounds[-1][1] == items
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert max(hi - lo for lo, hi in bounds) - min(hi - lo for lo, hi in bounds) <= 1
    gens = [[Generation(text=str(i), token_ids=(i,), finish_reason="stop")] for i in range(5)]
    joined = join_shards([gens[:2], gens[2:2], gens[2:]], 5)
    assert [g[0].text for g in joined] == ["0", "1", "2", "3", "4"]
    with pytest.raises(RuntimeError, match="gathered 4 prompt outputs"):
        join_shards([gens[:2], gens[3:]], 5)
    replay = ReplayBackend(joined)
    assert replay.generate([[1]] * 5, SamplingConfig()) is joined


def test_collectives_are_local_in_one_process() -> None:
    barrier("nothing to wait for", timeout_s=1)
    assert broadcast_object({"a": 1}) == {"a": 1}
    assert gather_objects("x") == ["x"]


def test_the_wrap_policy_picks_decoder_layers(tiny_model: str) -> None:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    picked = [name for name, m in model.named_modules() if decoder_layer_policy(m, False, 0)]
    assert picked == ["model.layers.0", "model.layers.1"]
    assert decoder_layer_policy(model, True, 0)  # always recurse


class _Trainer:
    is_global_zero = True
    strategy = None


def test_full_state_dict_of_an_unsharded_model_is_its_state_dict(tiny_model: str) -> None:
    from sftlab.module import SFTModule

    module = SFTModule(model_name=tiny_model)
    module.configure_model()
    state = full_state_dict(_Trainer(), module)
    assert state is not None and state.keys() == module.model.state_dict().keys()
    not_zero = type("T", (), {"is_global_zero": False, "strategy": None})()
    assert full_state_dict(not_zero, module) is None


class _Metrics(pl.Callback):
    def __init__(self) -> None:
        self.seen: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, *args) -> None:
        self.seen.append({k: float(v) for k, v in trainer.callback_metrics.items()})


def _fit_one_step(tiny_model: str, **module_kwargs) -> dict[str, float]:
    from sftlab.data.countdown_regime import CountdownRegime
    from sftlab.data.datamodule import SFTDataModule
    from sftlab.module import SFTModule

    metrics = _Metrics()
    data = SFTDataModule(
        CountdownRegime(train_size=4, num_numbers=(3,), max_attempts=1),
        tokenizer=tiny_model,
        micro_batch_size=2,
        global_batch_size=4,
        max_length=512,
    )
    trainer = pl.Trainer(
        max_steps=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[metrics],
    )
    trainer.fit(SFTModule(model_name=tiny_model, **module_kwargs), datamodule=data)
    return metrics.seen[-1]


def test_mfu_is_logged_with_a_peak_and_not_on_cpu_without(tiny_model: str) -> None:
    with_peak = _fit_one_step(tiny_model, peak_flops=1e12)
    assert 0 < with_peak["train/mfu"] < 1
    assert with_peak["train/tokens_per_s"] > 0 and with_peak["train/padding_share"] == 0.0
    assert "train/grad_norm" in with_peak and with_peak["train/target_tokens"] > 0
    assert "train/mfu" not in _fit_one_step(tiny_model)


@pytest.mark.slow
def test_compiled_decoder_layers_compute_the_same_loss(tiny_model: str, tokenizer) -> None:
    from sftlab.data.batching import collate
    from sftlab.data.example import Example, user_prompt
    from sftlab.data.formatting import tokenize_example
    from sftlab.module import SFTModule

    batch = collate(
        [
            tokenize_example(Example(prompt=user_prompt(f"q{i}"), response="a " * (i + 3)), tokenizer)
            for i in range(3)
        ],
        "packed",
        tokenizer.pad_token_id,
    )
    losses = []
    for compile in (False, True):
        module = SFTModule(model_name=tiny_model, compile=compile)
        module.configure_model()
        losses.append(module.summed_loss(batch))
        losses[-1].backward()
    assert losses[1].item() == pytest.approx(losses[0].item(), rel=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.skipif(importlib.util.find_spec("liger_kernel") is None, reason="needs liger-kernel")
def test_fused_linear_cross_entropy_equals_the_plain_loss(tiny_model: str, tokenizer) -> None:
    from sftlab.data.batching import collate
    from sftlab.data.example import Example, user_prompt
    from sftlab.data.formatting import tokenize_example
    from sftlab.module import SFTModule

    batch = collate(
        [
            tokenize_example(Example(prompt=user_prompt(f"q{i}"), response="a " * (i + 3)), tokenizer)
            for i in range(3)
        ],
        "packed",
        tokenizer.pad_token_id,
    )
    batch = {k: v.cuda() if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    losses, grads = [], []
    for fused in (False, True):
        module = SFTModule(model_name=tiny_model, fused_linear_cross_entropy=fused)
        module.configure_model()
        module.cuda()
        loss = module.summed_loss(batch)
        loss.backward()
        losses.append(loss.item())
        grads.append(module.model.get_output_embeddings().weight.grad.clone())
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-3, atol=1e-5)


def test_fused_linear_cross_entropy_refuses_a_cpu(tiny_model: str) -> None:
    with pytest.raises(ValueError, match="fused_linear_cross_entropy=true needs a CUDA GPU"):
        _fit_one_step(tiny_model, fused_linear_cross_entropy=True)


def test_packed_loss_projects_only_the_target_positions(tiny_model: str, tokenizer) -> None:
    import torch.nn.functional as F

    from sftlab.data.batching import collate
    from sftlab.data.example import Example, user_prompt
    from sftlab.data.formatting import IGNORE_INDEX, tokenize_example
    from sftlab.module import SFTModule

    batch = collate(
        [
            tokenize_example(Example(prompt=user_prompt(f"q{i}"), response="b " * (i + 2)), tokenizer)
            for i in range(3)
        ],
        "packed",
        tokenizer.pad_token_id,
    )
    module = SFTModule(model_name=tiny_model)
    module.configure_model()
    from sftlab.data.batching import target_positions

    batch = {**batch, "target_positions": target_positions(batch)}
    positions = batch["target_positions"]
    assert 0 < positions.numel() == batch["num_target_tokens"] < batch["input_ids"].numel()
    with torch.no_grad():
        full = F.cross_entropy(
            module(batch).flatten(0, 1), batch["labels"].flatten(), ignore_index=IGNORE_INDEX, reduction="sum"
        )
        assert module.summed_loss(batch).item() == pytest.approx(full.item(), rel=1e-5)
