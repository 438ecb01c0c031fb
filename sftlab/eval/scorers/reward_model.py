"""Reward-model scoring: a scalar reward for each (instruction, answer) pair from a sequence-classification
reward model, and the win rate of one set of rewards against another.

As in the arXiv 2604.06628 authors' AlpacaEval scoring (github.com/Nebularaid2000/rethink_sft_generalization
@3378e2b, `evaluation/alpaca_eval/code/evaluate_reward.py`; `allenai/Llama-3.1-8B-Instruct-RM-RB2` there,
`Skywork/Skywork-Reward-V2-Llama-3.1-8B` in `evaluate_SKY_reward.py`): the pair is a user turn and an
assistant turn rendered with the reward model's chat template, no generation prompt; the reward is the raw
logit of the single output (no sigmoid); nothing is truncated. Two deviations, each for a reason: the
template's tokens are used as they are, where that script deletes every BOS string from the text and lets
the tokenizer add one (identical for Llama-3 templates; deleting every `<|im_start|>` would wreck
ChatML-style templates whose BOS is that marker); and pairs are batched (sorted by length, right-padded),
where that script scores one at a time -- padding does not change a reward, the model reads the last
non-pad token. A pair longer than `max_length` tokens, when set, gets no reward rather than a truncated one.

torch and transformers are imported on first use, so the task registry stays light. Knows nothing about
tasks, backends or Lightning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal, Protocol, runtime_checkable

log = logging.getLogger(__name__)


@runtime_checkable
class RewardModel(Protocol):
    """Scores (instruction, answer) pairs. `name` goes into each record."""

    name: str

    def rewards(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        """One reward per pair, in order; None for a pair that cannot be scored (too long)."""
        ...


def win_rate(rewards: Sequence[float], reference_rewards: Sequence[float]) -> float:
    """Share of pairs whose reward beats the reference's, a tie counting one half; NaN for no pairs."""
    if len(rewards) != len(reference_rewards):
        raise ValueError(f"got {len(rewards)} rewards for {len(reference_rewards)} reference rewards")
    if not rewards:
        return float("nan")
    return sum(win_value(r, ref) for r, ref in zip(rewards, reference_rewards, strict=True)) / len(rewards)


def win_value(reward: float, reference_reward: float) -> float:
    """1 for a win over the reference, 0.5 for a tie, 0 for a loss."""
    return 1.0 if reward > reference_reward else 0.5 if reward == reference_reward else 0.0


class RewardModelScorer:
    """Rewards from a Hugging Face `AutoModelForSequenceClassification` with one output (num_labels=1).

    Args:
        model: reward model folder or hub id (paper: allenai/Llama-3.1-8B-Instruct-RM-RB2).
        tokenizer: tokenizer folder/hub id when it differs from `model`; it must have a chat template.
        batch_size: pairs per forward pass.
        max_length: longest input in tokens; longer pairs get no reward (None: no limit, as the paper).
        dtype: weight dtype; "auto" is bfloat16 on CUDA (the paper's) and float32 on CPU.
        device: "auto" (CUDA when available) or a torch device string.
        keep_loaded: keep the model in memory between calls; False frees it after each call (in-training,
            so the reward model does not hold GPU memory through the training steps).
    """

    def __init__(
        self,
        model: str,
        tokenizer: str | None = None,
        batch_size: int = 8,
        max_length: int | None = None,
        dtype: Literal["auto", "bfloat16", "float16", "float32"] = "auto",
        device: str = "auto",
        keep_loaded: bool = True,
    ) -> None:
        problems = []
        if batch_size < 1:
            problems.append(f"batch_size must be >= 1, got batch_size={batch_size}")
        if max_length is not None and max_length < 1:
            problems.append(f"max_length must be >= 1 or None, got max_length={max_length}")
        if problems:
            raise ValueError("invalid RewardModelScorer: " + "; ".join(problems))
        self.model_path = model
        self.tokenizer_path = tokenizer or model
        self.batch_size = batch_size
        self.max_length = max_length
        self.dtype = dtype
        self.device = device
        self.keep_loaded = keep_loaded
        self.name = model
        self._model: Any = None
        self._tokenizer: Any = None

    # -- public ----------------------------------------------------------------------------------------
    def rewards(self, pairs: Sequence[tuple[str, str]]) -> list[float | None]:
        """The reward of each (instruction, answer) pair, in order; None for a pair over `max_length`."""
        if not pairs:
            return []
        self._load()
        try:
            encoded = [self.encode(instruction, answer) for instruction, answer in pairs]
            fits = [
                i for i, ids in enumerate(encoded) if self.max_length is None or len(ids) <= self.max_length
            ]
            if len(fits) < len(pairs):
                log.warning(
                    "%d of %d pairs exceed max_length=%s: no reward",
                    len(pairs) - len(fits),
                    len(pairs),
                    self.max_length,
                )
            out: list[float | None] = [None] * len(pairs)
            for batch in self._batches(fits, encoded):
                for i, reward in zip(batch, self._forward([encoded[i] for i in batch]), strict=True):
                    out[i] = reward
            return out
        finally:
            if not self.keep_loaded:
                self.close()

    def encode(self, instruction: str, answer: str) -> list[int]:
        """Token ids of the pair as one user turn and one assistant turn in the chat template."""
        self._load_tokenizer()
        conversation = [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]
        ids = self._tokenizer.apply_chat_template(conversation, add_generation_prompt=False, tokenize=True)
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)

    def close(self) -> None:
        """Free the model (it is loaded again on the next call)."""
        if self._model is None:
            return
        import torch

        self._model = None
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    # -- internals -------------------------------------------------------------------------------------
    def _device(self) -> Any:
        import torch

        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _torch_dtype(self) -> Any:
        import torch

        if self.dtype == "auto":
            return torch.bfloat16 if self._device().type == "cuda" else torch.float32
        return getattr(torch, self.dtype)

    def _load_tokenizer(self) -> None:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path)
            if not getattr(tokenizer, "chat_template", None):
                raise ValueError(
                    f"tokenizer {self.tokenizer_path!r} has no chat template; reward models score chat "
                    "turns: pass tokenizer= a folder/hub id whose tokenizer has the reward model's template"
                )
            self._tokenizer = tokenizer

    def _load(self) -> None:
        self._load_tokenizer()
        if self._model is not None:
            return
        from transformers import AutoModelForSequenceClassification

        model = AutoModelForSequenceClassification.from_pretrained(self.model_path, dtype=self._torch_dtype())
        if model.config.num_labels != 1:
            raise ValueError(
                f"reward model {self.model_path!r} has num_labels={model.config.num_labels}; a reward model "
                "outputs one scalar (num_labels=1): check that model= names a reward model"
            )
        pad_id = self._tokenizer.pad_token_id
        if pad_id is not None and model.config.pad_token_id is None:
            model.config.pad_token_id = pad_id  # the model finds each sequence's last token through it
        self._model = model.to(self._device()).eval()

    def _batches(self, indices: list[int], encoded: list[list[int]]) -> list[list[int]]:
        """`indices` sorted by length (less padding) in batches of `batch_size`; one by one when the model
        has no pad token to batch with."""
        order = sorted(indices, key=lambda i: len(encoded[i]))
        step = self.batch_size if self._pad_id() is not None else 1
        return [order[start : start + step] for start in range(0, len(order), step)]

    def _pad_id(self) -> int | None:
        config_pad = self._model.config.pad_token_id
        return config_pad if config_pad is not None else self._tokenizer.pad_token_id

    def _forward(self, batch: list[list[int]]) -> list[float]:
        """Rewards of one batch, right-padded (a batch of one is never padded)."""
        import torch

        width = max(len(ids) for ids in batch)
        pad = self._pad_id() if len(batch) > 1 else 0
        device = self._device()
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids in batch], device=device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids in batch], device=device)
        with torch.inference_mode():
            logits = self._model(input_ids=input_ids, attention_mask=mask).logits
        return [float(x) for x in logits[:, 0].float().cpu()]
