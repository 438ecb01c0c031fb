"""Eval throughput: generated tokens/s of VLLMBackend vs HFBackend on the same prompts and model, and the
time of one weight export + in-place reload. Prints one JSON line last.

    python benchmarks/eval_throughput.py [--model smollm2-135m-instruct] [--prompts 32] [--max-tokens 128]

Both backends run greedy on the same Countdown prompts (the quickstart's eval), one after the other on the
same machine; the ratio is what counts, absolute seconds are context.

`ceiling_tokens_per_s` puts both in proportion: decoding a token costs at least 2 x parameters FLOPs, and
`matmul_gflops` is what this machine sustains on the model's own layer shapes (fp32, all threads), so no
backend can generate faster than their quotient. Where HF already reaches a large share of it, no
backend can be many times faster than HF on that machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.25)
    args = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftlab.eval.backends.hf_backend import HFBackend
    from sftlab.eval.backends.vllm_backend import VLLMBackend
    from sftlab.eval.evaluate import render_prompts
    from sftlab.eval.export import export_model
    from sftlab.eval.tasks.countdown import CountdownTask
    from sftlab.eval.types import SamplingConfig
    from sftlab.models import resolve_model

    path = resolve_model(args.model)
    tokenizer = AutoTokenizer.from_pretrained(path)
    prompts = render_prompts(CountdownTask(num_problems=args.prompts).items(), tokenizer)
    # min_tokens is not a SamplingConfig field: both backends stop on EOS, so count what they generate.
    sampling = SamplingConfig(n=1, temperature=0.0, max_tokens=args.max_tokens)

    result: dict[str, object] = {
        "benchmark": "eval_throughput",
        "model": args.model,
        "prompts": len(prompts),
        "max_tokens": args.max_tokens,
        "machine": platform.machine(),
        "cuda": torch.cuda.is_available(),
        "threads": torch.get_num_threads(),
    }

    vllm = VLLMBackend(gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=2048)
    t0 = time.perf_counter()
    vllm.start(path)
    result["vllm_start_s"] = round(time.perf_counter() - t0, 2)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        folder = export_model(model, tmp, source_folder=path)
        result["export_s"] = round(time.perf_counter() - t0, 2)
        t0 = time.perf_counter()
        vllm.update_weights(str(folder))
        result["reload_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    out = vllm.generate(prompts, sampling)
    seconds = time.perf_counter() - t0
    tokens = sum(g[0].num_tokens for g in out)
    vllm.close()
    result.update(vllm_tokens=tokens, vllm_s=round(seconds, 2), vllm_tokens_per_s=round(tokens / seconds, 1))

    hf = HFBackend(batch_size=len(prompts))
    hf.start(path)
    t0 = time.perf_counter()
    out = hf.generate(prompts, sampling)
    seconds = time.perf_counter() - t0
    tokens = sum(g[0].num_tokens for g in out)
    result.update(hf_tokens=tokens, hf_s=round(seconds, 2), hf_tokens_per_s=round(tokens / seconds, 1))
    result["vllm_over_hf"] = round(result["vllm_tokens_per_s"] / result["hf_tokens_per_s"], 2)
    gflops = matmul_gflops(model.config.hidden_size, model.config.intermediate_size, batch=len(prompts))
    result["matmul_gflops"] = round(gflops, 1)
    result["ceiling_tokens_per_s"] = round(gflops * 1e9 / (2 * sum(p.numel() for p in model.parameters())), 1)
    print(json.dumps(result))


def matmul_gflops(hidden: int, intermediate: int, batch: int, seconds: float = 3.0) -> float:
    """Sustained fp32 GFLOP/s of a decode-shaped matmul ([batch, hidden] x [hidden, intermediate])."""
    import torch

    a, b = torch.randn(batch, hidden), torch.randn(hidden, intermediate)
    for _ in range(20):
        a @ b
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        count += 1
    return 2 * batch * hidden * intermediate * count / (time.perf_counter() - start) / 1e9


if __name__ == "__main__":
    main()
