"""GenerationEval on a real Trainer: when it runs, what it logs, failure handling, resume state."""

from __future__ import annotations

import importlib.util

import lightning.pytorch as pl
import pytest
from lightning.pytorch.loggers import CSVLogger

from sftlab.callbacks import GenerationEval
from sftlab.data.countdown_regime import CountdownRegime
from sftlab.data.datamodule import SFTDataModule
from sftlab.eval.backends.hf_backend import HFBackend
from sftlab.eval.tasks.countdown import CountdownTask
from sftlab.module import SFTModule


def fit(tiny_model: str, tmp_path, callback: GenerationEval, max_steps: int = 4) -> pl.Trainer:
    data = SFTDataModule(
        CountdownRegime(train_size=32, num_numbers=(3,), max_attempts=1),
        tokenizer=tiny_model,
        micro_batch_size=2,
        global_batch_size=4,
        max_length=512,
    )
    logger = CSVLogger(tmp_path, name="", version="")
    trainer = pl.Trainer(
        max_steps=max_steps,
        accelerator="cpu",
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
        default_root_dir=tmp_path,
        log_every_n_steps=1,
    )
    trainer.fit(SFTModule(model_name=tiny_model, learning_rate=1e-3), datamodule=data)
    return trainer


def task() -> CountdownTask:
    return CountdownTask(num_problems=3, num_numbers=(3,), max_tokens=8)


def test_runs_at_start_interval_and_end(tiny_model: str, tmp_path) -> None:
    callback = GenerationEval([task()], backend=HFBackend(), every_n_steps=2, eval_steps=[3], at_end=True)
    trainer = fit(tiny_model, tmp_path, callback, max_steps=5)
    assert [h["step"] for h in callback.history] == [0, 2, 3, 4, 5]
    assert "eval/countdown/accuracy" in trainer.callback_metrics
    for key in ("response_tokens_mean", "response_tokens_p50", "response_tokens_p90", "clip_rate"):
        assert f"eval/countdown/{key}" in callback.history[-1]["metrics"]
    last = callback.history[-1]["metrics"]
    # A random tiny model practically never emits EOS within 8 tokens: every sample is clipped.
    assert last["eval/countdown/clip_rate"] == 1.0 and last["eval/countdown/response_tokens_max"] == 8
    assert 0 <= callback.history[-1]["metrics"]["eval/id/accuracy"] <= 1
    metrics_csv = (tmp_path / "metrics.csv").read_text()
    assert "eval/countdown/accuracy" in metrics_csv and "train/loss" in metrics_csv
    assert (tmp_path / "eval" / "step_000005" / "countdown.jsonl").is_file()


class FlakyBackend(HFBackend):
    """HF generation that crashes on its first generate call, as a dying engine would."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.closed = 0

    def generate(self, prompts, sampling):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("engine died")
        return super().generate(prompts, sampling)

    def close(self) -> None:
        self.closed += 1
        super().close()


def test_a_failed_eval_is_logged_and_the_next_one_retries(tiny_model: str, tmp_path) -> None:
    backend = FlakyBackend()
    callback = GenerationEval([task()], backend=backend, every_n_steps=2, at_end=False)
    trainer = fit(tiny_model, tmp_path, callback, max_steps=4)
    assert trainer.global_step == 4  # training went on
    assert [h["step"] for h in callback.history] == [2, 4]  # step 0 failed, later evals ran
    assert callback.errors == 1 and backend.closed >= 1
    assert callback.history[-1]["metrics"]["eval/errors"] == 1.0


def test_history_survives_a_checkpoint_round_trip() -> None:
    callback = GenerationEval([task()], backend=HFBackend())
    callback.history = [{"step": 0, "metrics": {"eval/countdown/accuracy": 0.1}}]
    restored = GenerationEval([task()], backend=HFBackend())
    restored.load_state_dict(callback.state_dict())
    assert restored.history == callback.history and not restored.due(0)


@pytest.mark.vllm
@pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed")
def test_vllm_backend_inside_fit(tiny_model: str, tmp_path) -> None:
    from sftlab.eval.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(gpu_memory_utilization=0.25, max_model_len=512)
    callback = GenerationEval([task()], backend=backend, every_n_steps=2)
    fit(tiny_model, tmp_path, callback, max_steps=2)
    assert [h["step"] for h in callback.history] == [0, 2]
    assert not backend.started  # closed at teardown
    texts = (tmp_path / "texts.jsonl").read_text().splitlines()
    assert len(texts) == 2 * 3
