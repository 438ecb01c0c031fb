"""Training throughput: sftlab vs TRL's SFTTrainer, side by side, same model, same data, same machine.

    python benchmarks/train_throughput.py                # CPU: small random model, a few minutes
    python benchmarks/train_throughput.py --gpu          # Qwen3-1.7B-shaped random model, ~16k packed tokens

Both trainers get the same randomly initialised model (built from a config, no hub), the same synthetic
long-CoT length mix (prompt + response lengths drawn log-normally, loss on response tokens only), the
same micro-batches in the same order (no shuffling; one micro-batch per optimizer step), padding-free
packing (sftlab `batch_mode: packed`; TRL `padding_free=True`, which concatenates a micro-batch's
sequences into one row with per-sequence position ids), the same attention kernel, AdamW with weight
decay 0.01, gradient clipping at 1.0, and on GPU bf16 autocast with fp32 weights and activation
checkpointing. TRL runs with its defaults otherwise (it also computes entropy and token accuracy of
every step for its logs; that is part of what a TRL user pays).

Each trainer runs in a fresh subprocess per repeat (imports and model build are not timed; peak memory
is that process's), alternating sftlab / TRL `--repeats` times; the first `--warmup` optimizer steps are
not timed. Reported per trainer: median tokens/s over repeats (real tokens of the timed steps / wall
time), peak memory, padding share, MFU on GPU (sftlab.flops accounting); and the ratio sftlab / TRL.
One JSON line last.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CPU_MODEL = dict(  # SmolLM2 (Llama) architecture and vocabulary, shrunk to run on two CPU cores
    base="smollm2",
    hidden_size=256,
    intermediate_size=768,
    num_hidden_layers=4,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=64,
    vocab_size=49152,
    tie_word_embeddings=True,
)
GPU_MODEL = dict(  # Qwen3-1.7B's shape (the DESIGN.md H100 anchors use the same)
    base="qwen3",
    hidden_size=2048,
    intermediate_size=6144,
    num_hidden_layers=28,
    num_attention_heads=16,
    num_key_value_heads=8,
    head_dim=128,
    vocab_size=151936,
    tie_word_embeddings=True,
)


def model_config(spec: dict, max_len: int):
    from transformers import LlamaConfig, Qwen3Config

    fields = {k: v for k, v in spec.items() if k != "base"}
    cls = LlamaConfig if spec["base"] == "smollm2" else Qwen3Config
    return cls(**fields, max_position_embeddings=max(4096, max_len), rms_norm_eps=1e-6, use_cache=False)


def synthetic_examples(n: int, mean_tokens: int, max_tokens: int, vocab: int, seed: int) -> list[tuple]:
    """(input_ids, target_mask) pairs: a 32-96 token prompt and a log-normal response (sigma 0.6)."""
    rng = random.Random(seed)
    sigma = 0.6
    median = mean_tokens / math.exp(sigma**2 / 2)
    out = []
    for _ in range(n):
        prompt = rng.randint(32, 96)
        response = min(max_tokens - prompt, max(16, int(rng.lognormvariate(math.log(median), sigma))))
        ids = tuple(rng.randrange(3, vocab) for _ in range(prompt + response))
        out.append((ids, (0,) * prompt + (1,) * response))
    return out


# -- workers (each in its own process) -------------------------------------------------------------------
def sftlab_worker(job: dict) -> dict:
    import lightning.pytorch as pl
    import torch

    from sftlab.data.datamodule import SFTDataModule
    from sftlab.data.formatting import TokenizedExample
    from sftlab.module import SFTModule

    examples = [TokenizedExample(input_ids=ids, target_mask=mask) for ids, mask in job["examples"]]

    class Regime:  # the datamodule's regime slot; the examples are already tokens
        name = "synthetic_long_cot"

        def load(self, split: str) -> list:
            return []

    class Data(SFTDataModule):
        def tokenize(self, split: str, limit=None, subset_seed=None) -> list:
            return examples

    timer = StepTimer(job["warmup"], job["warmup"] + job["steps"], job["gpu"])
    counter = PaddingCounter()
    module = SFTModule(
        model_name=job["model_dir"],
        random_init=True,
        seed_init=0,
        learning_rate=5e-5,
        warmup_ratio=0.0,
        lr_schedule="constant",
        weight_decay=0.01,
        gradient_checkpointing=job["gpu"],
        attn_implementation=job["attn"],
        peak_flops=None,
    )
    data = Data(
        Regime(),
        tokenizer=job["model_dir"],
        batch_mode="packed",
        micro_batch_size=job["micro_batch_size"],
        global_batch_size=job["micro_batch_size"],
        max_length=job["max_tokens"],
        shuffle=False,
    )
    trainer = pl.Trainer(
        accelerator="gpu" if job["gpu"] else "cpu",
        devices=1,
        precision="bf16-mixed" if job["gpu"] else "32-true",
        max_steps=job["warmup"] + job["steps"],
        gradient_clip_val=1.0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=[timer.lightning(), counter.lightning()],
    )
    if job["gpu"]:
        torch.cuda.reset_peak_memory_stats()
    trainer.fit(module, datamodule=data)
    return {**timer.result(), **counter.result(), **peak_memory(job["gpu"])}


def trl_worker(job: dict) -> dict:
    import torch
    from datasets import Dataset
    from torch.utils.data import SequentialSampler
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    config = AutoConfig.from_pretrained(job["model_dir"])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation=job["attn"], dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(job["model_dir"])
    rows = {"input_ids": [], "labels": []}
    for ids, mask in job["examples"]:
        rows["input_ids"].append(list(ids))
        # transformers shifts labels inside the loss: label t is the target for position t-1.
        rows["labels"].append([t if m else -100 for t, m in zip(ids, mask, strict=True)])
    dataset = Dataset.from_dict(rows)
    timer = StepTimer(job["warmup"], job["warmup"] + job["steps"], job["gpu"])
    counter = PaddingCounter()

    class Callback(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            timer.step_done(state.global_step)

    class InOrder(SFTTrainer):  # the same micro-batches in the same order as sftlab
        def _get_train_sampler(self, train_dataset=None):
            return SequentialSampler(train_dataset or self.train_dataset)

    args = SFTConfig(
        output_dir=job["tmp"],
        per_device_train_batch_size=job["micro_batch_size"],
        gradient_accumulation_steps=1,
        max_steps=job["warmup"] + job["steps"],
        learning_rate=5e-5,
        lr_scheduler_type="constant",
        warmup_steps=0,
        weight_decay=0.01,
        max_grad_norm=1.0,
        padding_free=True,
        packing=False,
        max_length=None,
        dataset_kwargs={"skip_prepare_dataset": True},
        bf16=job["gpu"],
        use_cpu=not job["gpu"],
        gradient_checkpointing=job["gpu"],
        logging_steps=10**6,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = InOrder(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=[Callback()]
    )
    collate = trainer.data_collator
    trainer.data_collator = lambda features: counter.count(collate(features), features)
    if job["gpu"]:
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    return {**timer.result(), **counter.result(), **peak_memory(job["gpu"])}


class StepTimer:
    """Wall time from the end of optimizer step `start` to the end of step `stop` (device synced)."""

    def __init__(self, start: int, stop: int, gpu: bool) -> None:
        self.start, self.stop, self.gpu = start, stop, gpu
        self.t0: float | None = None
        self.t1: float | None = None

    def step_done(self, step: int) -> None:
        if step in (self.start, self.stop):
            if self.gpu:
                import torch

                torch.cuda.synchronize()
            if step == self.start:
                self.t0 = time.perf_counter()
            else:
                self.t1 = time.perf_counter()

    def lightning(self):
        import lightning.pytorch as pl

        timer = self

        class Timer(pl.Callback):
            last = 0

            def on_train_batch_end(self, trainer, *args) -> None:
                if trainer.global_step != self.last:
                    self.last = trainer.global_step
                    timer.step_done(trainer.global_step)

        return Timer()

    def result(self) -> dict:
        if self.t0 is None or self.t1 is None:
            raise RuntimeError("the timed steps did not run; raise --steps or check the data size")
        return {"seconds": self.t1 - self.t0}


class PaddingCounter:
    """Real and total (padded) tokens of every micro-batch, in order."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []

    def count(self, batch: dict, features: list) -> dict:
        real = sum(len(f["input_ids"]) for f in features)
        self.batches.append((real, int(batch["input_ids"].numel())))
        return batch

    def lightning(self):
        import lightning.pytorch as pl

        counter = self

        class Counter(pl.Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
                counter.batches.append((batch["num_real_tokens"], int(batch["input_ids"].numel())))

        return Counter()

    def result(self) -> dict:
        return {"micro_batches": self.batches}


def peak_memory(gpu: bool) -> dict:
    if gpu:
        import torch

        return {"peak_memory_gb": torch.cuda.max_memory_allocated() / 2**30}
    import resource

    return {"peak_memory_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # KiB -> GiB


# -- driver ----------------------------------------------------------------------------------------------
def run_worker(name: str, job_path: Path, timeout: float) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", name, "--job", str(job_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{name} worker failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--gpu", action="store_true", help="Qwen3-1.7B shape, bf16, checkpointing, ~16k tokens"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--steps", type=int, default=None, help="timed optimizer steps (default 5 CPU, 10 GPU)"
    )
    parser.add_argument("--micro-batch-size", type=int, default=None, help="sequences per packed micro-batch")
    parser.add_argument("--mean-tokens", type=int, default=None, help="mean sequence length of the mix")
    parser.add_argument("--attn", default=None, help="sdpa (default) or flash_attention_2")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--worker", choices=["sftlab", "trl"], help=argparse.SUPPRESS)
    parser.add_argument("--job", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        job = json.loads(Path(args.job).read_text())
        result = sftlab_worker(job) if args.worker == "sftlab" else trl_worker(job)
        print(json.dumps(result))
        return

    gpu = args.gpu
    spec = GPU_MODEL if gpu else CPU_MODEL
    steps = args.steps or (10 if gpu else 5)
    micro = args.micro_batch_size or 4
    mean_tokens = args.mean_tokens or (4000 if gpu else 320)  # GPU: 4 x ~4k = ~16k packed tokens
    max_tokens = 8 * mean_tokens
    attn = args.attn or "sdpa"
    total_steps = args.warmup + steps
    examples = synthetic_examples(total_steps * micro, mean_tokens, max_tokens, spec["vocab_size"], seed=0)

    from sftlab.flops import flops_model, peak_flops
    from sftlab.models import resolve_model

    work = Path(tempfile.mkdtemp(prefix="sftlab-bench-"))
    config = model_config(spec, max_tokens)
    model_dir = work / "model"
    config.save_pretrained(model_dir)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(resolve_model("smollm2-135m-instruct")).save_pretrained(model_dir)
    job = {
        "examples": examples,
        "model_dir": str(model_dir),
        "tmp": str(work / "trl_out"),
        "gpu": gpu,
        "attn": attn,
        "warmup": args.warmup,
        "steps": steps,
        "micro_batch_size": micro,
        "max_tokens": max_tokens,
    }
    job_path = work / "job.json"
    job_path.write_text(json.dumps(job))
    timed = slice(args.warmup * 1, total_steps)  # one micro-batch per step
    timed_examples = examples[timed.start * micro : timed.stop * micro]
    timed_tokens = sum(len(ids) for ids, _ in timed_examples)
    lengths = [len(ids) for ids, _ in timed_examples]
    flops = flops_model(config).flops(lengths)
    import torch

    peak = peak_flops(torch.device("cuda")) if gpu else None

    runs: dict[str, list[dict]] = {"sftlab": [], "trl": []}
    for r in range(args.repeats):
        for name in ("sftlab", "trl") if r % 2 == 0 else ("trl", "sftlab"):
            result = run_worker(name, job_path, args.timeout)
            runs[name].append(result)
            print(f"repeat {r + 1} {name}: {timed_tokens / result['seconds']:.0f} tokens/s", flush=True)

    summary: dict[str, dict] = {}
    for name, results in runs.items():
        rates = [timed_tokens / res["seconds"] for res in results]
        batches = results[0]["micro_batches"][timed]
        real, total = sum(b[0] for b in batches), sum(b[1] for b in batches)
        median_s = statistics.median(res["seconds"] for res in results)
        summary[name] = {
            "tokens_per_s": statistics.median(rates),
            "tokens_per_s_all": [round(x, 1) for x in rates],
            "peak_memory_gb": round(max(res["peak_memory_gb"] for res in results), 3),
            "padding_share": 1 - real / total if total else 0.0,
            "mfu": flops / (median_s * peak) if peak else None,
        }
        print(
            f"{name:>7}: {summary[name]['tokens_per_s']:9.0f} tokens/s (median of {len(rates)}: "
            f"{summary[name]['tokens_per_s_all']}), peak memory {summary[name]['peak_memory_gb']:.2f} GB, "
            f"padding {summary[name]['padding_share']:.1%}"
            + (f", MFU {summary[name]['mfu']:.1%}" if summary[name]["mfu"] is not None else "")
        )
    ratio = summary["sftlab"]["tokens_per_s"] / summary["trl"]["tokens_per_s"]
    print(f"sftlab / TRL tokens/s: {ratio:.2f}x")
    import transformers
    import trl

    print(
        json.dumps(
            {
                "benchmark": "train_throughput",
                "device": torch.cuda.get_device_name() if gpu else f"cpu ({os.cpu_count()} cores)",
                "platform": platform.platform(),
                "model": spec,
                "micro_batch_size": micro,
                "mean_tokens": mean_tokens,
                "timed_steps": steps,
                "timed_tokens": timed_tokens,
                "attn_implementation": attn,
                "repeats": args.repeats,
                "sftlab": summary["sftlab"],
                "trl": summary["trl"],
                "ratio_sftlab_over_trl": ratio,
                "versions": {
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "trl": trl.__version__,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
