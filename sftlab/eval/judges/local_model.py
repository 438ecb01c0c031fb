"""LocalChatModel: a judge model run through a `GenerationBackend`, fed conversations rendered with its own
chat template.

The plumbing shared by the local judges (the Llama-Guard judge, the backend grader): the tokenizer is
loaded and the backend started on first use and kept, every conversation is rendered with
`apply_chat_template`, and all of them go to the backend in one `generate` call. Knows nothing about
prompts, rubrics or verdicts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sftlab.eval.backends.base import GenerationBackend
from sftlab.eval.types import Generation, SamplingConfig


class LocalChatModel:
    """A chat model behind a generation backend.

    Args:
        model: model folder or hub id the backend loads.
        backend: the generation backend (started with `model` on first use).
        tokenizer: tokenizer folder or hub id whose chat template renders the conversations.
        sampling: how to sample (judges sample greedily).
    """

    def __init__(
        self, model: str, backend: GenerationBackend, tokenizer: str, sampling: SamplingConfig
    ) -> None:
        self.model = model
        self.backend = backend
        self.tokenizer_path = tokenizer
        self.sampling = sampling
        self._tokenizer: Any = None
        self._started = False

    def generate(
        self, conversations: Sequence[Sequence[Mapping[str, str]]], add_generation_prompt: bool
    ) -> list[Generation]:
        """The first sample for each conversation, in order, from one batched generate call."""
        if not conversations:
            return []
        self._start()
        prompts = [self._render(c, add_generation_prompt) for c in conversations]
        outputs = self.backend.generate(prompts, self.sampling)
        if len(outputs) != len(prompts):
            raise RuntimeError(f"backend returned {len(outputs)} outputs for {len(prompts)} prompts")
        return [samples[0] for samples in outputs]

    def close(self) -> None:
        self.backend.close()
        self._started = False

    def _start(self) -> None:
        if not self._started:
            from transformers import AutoTokenizer

            self._tokenizer = AutoTokenizer.from_pretrained(self.tokenizer_path)
            self.backend.start(self.model)
            self._started = True

    def _render(self, conversation: Sequence[Mapping[str, str]], add_generation_prompt: bool) -> list[int]:
        ids = self._tokenizer.apply_chat_template(
            [dict(m) for m in conversation], add_generation_prompt=add_generation_prompt, tokenize=True
        )
        return list(ids["input_ids"] if hasattr(ids, "keys") else ids)
