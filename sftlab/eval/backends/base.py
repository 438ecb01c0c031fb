"""The generation backend protocol. Backends turn prompt token ids into `Generation`s and swap in new
weights; they know nothing about tasks or scoring."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from sftlab.eval.types import Generation, SamplingConfig


@runtime_checkable
class GenerationBackend(Protocol):
    def start(self, model_path: str) -> None:
        """Load the model (idempotent). Called once per run before the first eval."""
        ...

    def update_weights(self, folder: str) -> None:
        """Replace the weights with those saved in `folder` (safetensors + config), in place."""
        ...

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig) -> list[list[Generation]]:
        """`sampling.n` generations for each prompt, in prompt order."""
        ...

    def close(self) -> None:
        """Free the engine. Safe to call twice; `start` may be called again afterwards."""
        ...
