"""Shared fixtures: a tiny random model with the shipped model's architecture and real tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# head_dim must be >= 32 for vLLM's CPU attention (DESIGN.md); 64/2 heads = 32.
TINY = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=32,
    max_position_embeddings=2048,
)


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from sftlab.models import write_random_model

    out = tmp_path_factory.mktemp("tiny-smollm2")
    return str(write_random_model("smollm2-135m-instruct", out, seed=0, **TINY))


@pytest.fixture(scope="session")
def tokenizer(tiny_model: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
