"""Data throughput: read + tokenise + batch a synthetic long-CoT set shaped like the paper's, and the
padding share of padded batches vs packed ones on it. Prints one JSON line last.

    python benchmarks/data_throughput.py [--rows 2048] [--mean-tokens 5000] [--micro-batch-size 4]

The set imitates Math-CoT-20k (arXiv 2604.06628: 20,480 rows, Qwen3-32B long CoT): each row a short math
question and a `<think>…</think>` + summary + `\\boxed{}` response whose length in tokens is drawn from a
log-normal with the given mean (sigma 0.6, clipped to 400-18,000 so every row fits max_length 20,000).
It is written to parquet and then goes through the real path: `MathCoT.load` (read, schema checks),
`SFTDataModule.tokenize` (chat template, assistant labels, length check) and the step-planned loader in
padded and in packed mode (collate per micro-batch). Timings are per stage, in rows/s, with the time
for the paper's 20,480 rows extrapolated linearly. Both batch modes run one after the other on the same
rows; their ratio is what counts, absolute seconds are context for this machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import tempfile
import time

PAPER_ROWS = 20480
# Words of a math long-CoT trace, drawn at random (the text means nothing; its token count is what counts).
TRACE_TEXT = (
    "so we need the value of x then check it again wait let me recompute carefully the sum is and because "
    "therefore hence if then so 2 3 5 7 11 + - = * / ( ) \\frac{1}{2} x^2 \\sqrt{3} alternatively hmm that "
    "gives but the problem says consider case one case two verify substituting back works"
)
WORDS = TRACE_TEXT.split()


def synthetic_rows(rows: int, mean_tokens: int, tokens_per_word: float, seed: int) -> list[dict]:
    rng = random.Random(seed)
    sigma = 0.6
    median = mean_tokens / math.exp(sigma**2 / 2)  # log-normal mean = median * exp(sigma^2 / 2)
    out = []
    for i in range(rows):
        tokens = min(18000, max(400, int(rng.lognormvariate(math.log(median), sigma))))
        words = [rng.choice(WORDS) for _ in range(int(tokens / tokens_per_word))]
        cut = int(len(words) * 0.9)  # ~90% of a long-CoT response is thinking
        response = (
            f"<think>\n{' '.join(words[:cut])}\n</think>\n\n{' '.join(words[cut:])}\n\\boxed{{{i % 97}}}"
        )
        question = f"Problem {i}: find x such that {i % 13} x + {i % 7} = {i % 29}."
        out.append({"message": [{"role": "user", "content": question}], "response": response})
    return out


def run_loader(tokenized: list, mode: str, pad_id: int, micro: int, global_batch: int) -> dict:
    from sftlab.data.datamodule import StepPlannedDataset

    dataset = StepPlannedDataset(
        tokenized,
        mode=mode,
        pad_token_id=pad_id,
        global_batch_size=global_batch,
        micro_batch_size=micro,
        world_size=1,
        rank=0,
        shuffle=False,  # the paper's data order
        seed=0,
    )
    real = total = rows = 0
    widest = 0
    start = time.perf_counter()
    for batch in dataset:
        real += batch["num_real_tokens"]
        total += batch["input_ids"].numel()
        rows += batch["num_sequences"]
        widest = max(widest, batch["input_ids"].shape[-1])
    seconds = time.perf_counter() - start
    return {
        "rows_per_s": round(rows / seconds, 1),
        "seconds": round(seconds, 2),
        "padding_share": round(1 - real / total, 4),
        "tokens_per_micro_batch_max": widest if mode == "packed" else widest * micro,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2048, help=f"rows to build (the paper has {PAPER_ROWS})")
    parser.add_argument("--mean-tokens", type=int, default=5000, help="mean response length in tokens")
    parser.add_argument(
        "--micro-batch-size", type=int, default=4, help="sequences per micro-batch (paper: 4)"
    )
    parser.add_argument("--global-batch-size", type=int, default=256, help="sequences per step (paper: 256)")
    parser.add_argument("--tokenizer", default="smollm2-135m-instruct")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from sftlab.data.build import write_parquet
    from sftlab.data.datamodule import SFTDataModule
    from sftlab.data.regimes import MathCoT
    from sftlab.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(resolve_model(args.tokenizer))
    calibration = random.Random(args.seed + 1)
    sample = " ".join(calibration.choice(WORDS) for _ in range(5000))
    tokens_per_word = len(tokenizer(sample, add_special_tokens=False)["input_ids"]) / 5000
    rows = synthetic_rows(args.rows, args.mean_tokens, tokens_per_word, args.seed)
    result: dict[str, object] = {
        "benchmark": "data_throughput",
        "rows": args.rows,
        "tokenizer": args.tokenizer,
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "micro_batch_size": args.micro_batch_size,
    }
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "synthetic-cot.parquet")
        write_parquet(
            [{**r, "messages": r.pop("message"), "answer": "0", "source_index": 0} for r in rows], path
        )
        start = time.perf_counter()
        regime = MathCoT(source=path)
        examples = regime.load("train")
        read_s = time.perf_counter() - start

    class Loaded:  # the examples already read, so tokenisation is timed on its own
        name = regime.name

        def load(self, split: str) -> list:
            return examples

    data = SFTDataModule(Loaded(), tokenizer=args.tokenizer, max_length=20000, on_overlength="drop")
    data._tokenizer = tokenizer  # already loaded above; loading time is not throughput
    start = time.perf_counter()
    tokenized = data.tokenize("train")
    tokenize_s = time.perf_counter() - start
    lengths = sorted(len(t) for t in tokenized)
    micro = args.micro_batch_size
    global_batch = min(args.global_batch_size, len(tokenized) // micro * micro)
    result["global_batch_size"] = global_batch
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    padded = run_loader(tokenized, "padded", pad_id, args.micro_batch_size, global_batch)
    packed = run_loader(tokenized, "packed", pad_id, args.micro_batch_size, global_batch)
    total_s = read_s + tokenize_s + packed["seconds"]
    result.update(
        {
            "sequence_tokens_mean": round(sum(lengths) / len(lengths)),
            "sequence_tokens_p50": lengths[len(lengths) // 2],
            "sequence_tokens_max": lengths[-1],
            "dropped_overlength": data.stats["train_dropped_overlength"],
            "read_rows_per_s": round(len(examples) / read_s, 1),
            "tokenize_rows_per_s": round(len(tokenized) / tokenize_s, 1),
            "tokenize_tokens_per_s": round(sum(lengths) / tokenize_s),
            "padded": padded,
            "packed": packed,
            "padded_over_packed_tokens": round(1 / (1 - padded["padding_share"]), 3),
            "read_tokenize_pack_rows_per_s": round(len(tokenized) / total_s, 1),
            "paper_rows_extrapolated_s": round(total_s * PAPER_ROWS / len(tokenized), 1),
        }
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
