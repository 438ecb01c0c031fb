"""HFBackend: generation with transformers' `generate`, the fallback when vLLM is not available.

Slower than vLLM (on the 2-core test CPU, 32 Countdown prompts x 128 greedy tokens: 53 vs 79 tokens/s,
benchmarks/eval_throughput.py), but needs nothing beyond transformers. Sampling runs under `torch.random.fork_rng` so evaluation never moves the trainer's RNG.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from sftlab.eval.types import Generation, SamplingConfig


class HFBackend:
    """Generation through transformers.

    Args:
        batch_size: prompts per `generate` call (left-padded).
        dtype: weight dtype for generation ("float32" is the safe default on CPU).
        device: "auto" (CUDA when available) or a torch device string.
    """

    def __init__(self, batch_size: int = 16, dtype: str = "float32", device: str = "auto") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got batch_size={batch_size}")
        self.batch_size = batch_size
        self.dtype = dtype
        self.device = device
        self._model: Any = None
        self._tokenizer: Any = None

    def _device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def start(self, model_path: str) -> None:
        if self._model is None:
            self._load(model_path)

    def _load(self, folder: str) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self._model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, self.dtype))
        self._model.to(self._device()).eval()
        if self._tokenizer is None:
            self._tokenizer = AutoTokenizer.from_pretrained(folder)

    def update_weights(self, folder: str) -> None:
        if self._model is None:
            raise RuntimeError("HFBackend.start(model_path) must be called first")
        from safetensors.torch import load_file

        state = {}
        for shard in sorted(Path(folder).glob("*.safetensors")):
            state.update(load_file(shard))
        missing, unexpected = self._model.load_state_dict(state, strict=False)
        missing = [k for k in missing if k != "lm_head.weight"]
        if missing or unexpected:
            raise RuntimeError(
                f"weights in {folder} do not fit the model: missing {missing}, unexpected {unexpected}"
            )

    @torch.no_grad()
    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig) -> list[list[Generation]]:
        if self._model is None:
            raise RuntimeError("HFBackend.start(model_path) must be called first")
        model, device = self._model, self._device()
        eos_ids = _eos_ids(model)
        pad = self._tokenizer.pad_token_id if self._tokenizer.pad_token_id is not None else eos_ids[0]
        results: list[list[Generation]] = [[] for _ in prompts]
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(sampling.seed)
            for start in range(0, len(prompts), self.batch_size):
                chunk = prompts[start : start + self.batch_size]
                width = max(len(p) for p in chunk)
                ids = torch.full((len(chunk), width), pad, dtype=torch.long)
                mask = torch.zeros_like(ids)
                for row, p in enumerate(chunk):
                    ids[row, width - len(p) :] = torch.tensor(list(p))
                    mask[row, width - len(p) :] = 1
                out = model.generate(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    do_sample=sampling.temperature > 0,
                    temperature=sampling.temperature if sampling.temperature > 0 else None,
                    top_p=sampling.top_p if sampling.temperature > 0 else None,
                    top_k=None,
                    max_new_tokens=sampling.max_tokens,
                    num_return_sequences=sampling.n,
                    eos_token_id=eos_ids,
                    pad_token_id=pad,
                )
                new = out[:, width:].tolist()
                for k, tokens in enumerate(new):
                    results[start + k // sampling.n].append(
                        self._to_generation(tokens, eos_ids, sampling.max_tokens)
                    )
        return results

    def _to_generation(self, tokens: list[int], eos_ids: list[int], max_tokens: int) -> Generation:
        end = next((i for i, t in enumerate(tokens) if t in eos_ids), None)
        if end is None:
            kept, reason = tokens, "length" if len(tokens) >= max_tokens else "stop"
        else:
            kept, reason = tokens[: end + 1], "stop"
        text = self._tokenizer.decode(kept, skip_special_tokens=True)
        return Generation(text=text, token_ids=tuple(kept), finish_reason=reason)

    def close(self) -> None:
        self._model = None


def _eos_ids(model: Any) -> list[int]:
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = model.config.eos_token_id
    return list(eos) if isinstance(eos, (list, tuple)) else [eos]
