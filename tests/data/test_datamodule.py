"""SFTDataModule and step planning: accumulation, subsets, over-length policy, disjoint Countdown pools."""

from __future__ import annotations

import pytest

from sftlab.data.countdown_regime import CountdownRegime, countdown_problems
from sftlab.data.datamodule import SFTDataModule, StepPlannedDataset
from sftlab.data.example import DataError, Example, user_prompt
from sftlab.data.formatting import tokenize_example
from sftlab.data.schedule import accumulation_steps, epoch_order, plan_epoch, subset_indices


def test_accumulation_is_derived_and_must_divide() -> None:
    assert accumulation_steps(256, 4, 8) == 8
    with pytest.raises(ValueError, match="global_batch_size=30.*multiple of 8"):
        accumulation_steps(30, 4, 2)


def test_plan_gives_every_rank_disjoint_equal_shares() -> None:
    order = epoch_order(20, epoch=0, seed=0, shuffle=True)
    plans = [
        plan_epoch(order, global_batch_size=8, micro_batch_size=2, world_size=2, rank=r) for r in range(2)
    ]
    assert [len(p.steps) for p in plans] == [2, 2] and plans[0].dropped_examples == 4
    seen = [i for p in plans for step in p.steps for micro in step for i in micro]
    assert len(seen) == len(set(seen)) == 16
    assert all(len(step) == 2 for p in plans for step in p.steps)


def test_shuffle_changes_per_epoch_and_is_reproducible() -> None:
    assert epoch_order(10, 0, 1, True) == epoch_order(10, 0, 1, True)
    assert epoch_order(10, 0, 1, True) != epoch_order(10, 1, 1, True)
    assert epoch_order(10, 3, 1, False) == list(range(10))


def test_subset_is_deterministic_and_bounded() -> None:
    assert subset_indices(100, 10, 0) == subset_indices(100, 10, 0)
    assert len(subset_indices(100, 10, 0)) == 10
    with pytest.raises(ValueError, match="num_samples=200 exceeds the 100 rows"):
        subset_indices(100, 200, 0)


class ListRegime:
    name = "list"

    def __init__(self, items):
        self.items = items

    def load(self, split):
        return self.items


def test_overlength_examples_are_dropped_and_counted_or_rejected(tiny_model: str) -> None:
    items = [Example(prompt=user_prompt("q"), response="short", source="x:1")] * 6
    items += [Example(prompt=user_prompt("q"), response="long " * 300, source="x:7")]
    dm = SFTDataModule(
        ListRegime(items), tokenizer=tiny_model, max_length=128, micro_batch_size=2, global_batch_size=2
    )
    kept = dm.tokenize("train")
    assert len(kept) == 6 and dm.stats["train_dropped_overlength"] == 1
    strict = SFTDataModule(
        ListRegime(items),
        tokenizer=tiny_model,
        max_length=128,
        on_overlength="error",
        micro_batch_size=2,
        global_batch_size=2,
    )
    with pytest.raises(DataError, match=r"1 train examples exceed max_length=128: x:7 \("):
        strict.tokenize("train")


def test_micro_batches_carry_their_step_token_count(tiny_model: str, tokenizer) -> None:
    items = [Example(prompt=user_prompt(f"q{i}"), response="word " * (i + 1)) for i in range(8)]
    tokenized = [tokenize_example(e, tokenizer) for e in items]
    ds = StepPlannedDataset(
        tokenized,
        mode="packed",
        pad_token_id=0,
        global_batch_size=4,
        micro_batch_size=2,
        world_size=1,
        rank=0,
        shuffle=False,
        seed=0,
    )
    batches = list(ds)
    assert len(batches) == len(ds) == 4
    for step in (batches[:2], batches[2:]):
        assert step[0]["step_target_tokens"] == step[1]["step_target_tokens"]
        assert step[0]["step_target_tokens"] == sum(b["num_target_tokens"] for b in step)


def test_countdown_held_out_pool_never_overlaps_training() -> None:
    train = {p.key for p in countdown_problems("train", 300, seed=3, num_numbers=(3,))}
    test = {p.key for p in countdown_problems("test", 64, seed=3, num_numbers=(3,))}
    validation = {p.key for p in countdown_problems("validation", 64, seed=3, num_numbers=(3,))}
    assert len(train) == 300 and len(test) == 64
    assert not train & test and not train & validation and not test & validation
    # A different training size leaves the test pool unchanged.
    assert test == {p.key for p in countdown_problems("test", 64, seed=3, num_numbers=(3,))}


def test_countdown_regime_writes_verified_traces() -> None:
    from sftlab.eval.scorers.countdown import score_countdown

    examples = CountdownRegime(train_size=20, num_numbers=(3,), seed=1).load("train")
    assert len(examples) == 20
    for ex in examples:
        assert ex.response.startswith("<think>") and "\\boxed{" in ex.response
        assert score_countdown(ex.response, ex.reference).correct


def test_countdown_regime_reads_an_external_file(tmp_path) -> None:
    path = tmp_path / "cd.jsonl"
    path.write_text('{"Numbers": [3, 4, 5], "Target": 12}\n{"nums": [2, 6, 7], "target": 19}\n')
    examples = CountdownRegime(source=str(path)).load("train")
    assert [e.reference["target"] for e in examples] == [12, 19]
    path.write_text('{"Numbers": [3, 4, 5]}\n')
    with pytest.raises(DataError, match="cd.jsonl:1.*Target"):
        CountdownRegime(source=str(path)).load("train")
