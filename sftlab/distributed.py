"""Collectives sftlab needs around distributed training: the full-weight export under every strategy,
a barrier that names the rank that did not arrive, and small object gathers for evaluation.

Every function here is safe in a single process (no process group: it does the local thing). Functions
documented as *collective* must be called on every rank in the same order, or the job hangs. DeepSpeed
and FSDP are imported only when the running strategy uses them, so this module imports on CPU.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

import torch
import torch.distributed as dist

_GLOO_GROUP: Any = None  # a gloo group next to an NCCL default group, for CPU-side barriers and objects


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def cpu_group() -> Any:
    """A gloo process group for CPU-side collectives (barriers with timeouts, Python objects).

    *Collective* the first time it is called when the default backend is not gloo (NCCL): creating a group
    takes every rank, so call it from a hook that runs on all ranks (GenerationEval calls it in `setup`).
    None means the default group (already gloo, or no process group at all)."""
    global _GLOO_GROUP
    if not is_distributed() or dist.get_backend() == "gloo":
        return None
    if _GLOO_GROUP is None:
        _GLOO_GROUP = dist.new_group(backend="gloo")
    return _GLOO_GROUP


class RankTimeoutError(RuntimeError):
    """Not every rank reached a synchronisation point in time (a rank died, hangs or is far behind)."""


def barrier(what: str, timeout_s: float) -> None:
    """*Collective*: wait until every rank arrives, at most `timeout_s` seconds, else raise
    RankTimeoutError naming the ranks that did not arrive (torch's gloo `monitored_barrier`).

    Waiting ranks sit in a gloo barrier, not in an NCCL collective, so a long rank-0 evaluation does not
    trip the NCCL watchdog (its default time-out kills the job after 10-30 minutes)."""
    if not is_distributed():
        return
    try:
        dist.monitored_barrier(
            group=cpu_group(), timeout=_dt.timedelta(seconds=timeout_s), wait_all_ranks=True
        )
    except RuntimeError as exc:  # gloo's message names the missing ranks ("Ranks 1 failed to pass ...")
        raise RankTimeoutError(
            f"rank {rank()} waited {timeout_s:.0f}s at '{what}' and not every rank arrived: {exc}. A rank "
            "that died (see its log), hangs, or is slower than the timeout (raise it) stops the whole job."
        ) from exc


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """*Collective*: `obj` from rank `src` on every rank (over gloo: no GPU memory, no NCCL time-out)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, group=cpu_group())
    return box[0]


def gather_objects(obj: Any) -> list[Any] | None:
    """*Collective*: every rank's `obj` in rank order on rank 0; None on the other ranks."""
    if not is_distributed():
        return [obj]
    out: list[Any] | None = [None] * world_size() if rank() == 0 else None
    dist.gather_object(obj, out, dst=0, group=cpu_group())
    return out


# -- strategy facts ---------------------------------------------------------------------------------------
def decoder_layer_policy(module: torch.nn.Module, recurse: bool, nonwrapped_numel: int) -> bool:
    """FSDP wrap / activation-checkpointing policy: one unit per transformer block, for any transformers
    model. Blocks are the `GradientCheckpointingLayer` subclasses (every decoder layer in transformers 5)
    or, failing that, classes named `*DecoderLayer`. Usable from YAML by its import path:
    `auto_wrap_policy: sftlab.distributed.decoder_layer_policy`."""
    if recurse:
        return True
    try:
        from transformers.modeling_layers import GradientCheckpointingLayer
    except ImportError:  # pragma: no cover - older transformers
        GradientCheckpointingLayer = ()  # noqa: N806
    return isinstance(module, GradientCheckpointingLayer) or type(module).__name__.endswith("DecoderLayer")


def deepspeed_config(trainer: Any) -> dict[str, Any] | None:
    """The DeepSpeed config of the trainer's strategy; None when it is not DeepSpeed."""
    from lightning.pytorch.strategies import DeepSpeedStrategy

    strategy = getattr(trainer, "strategy", None)
    return strategy.config if isinstance(strategy, DeepSpeedStrategy) else None


def zero_stage(trainer: Any) -> int:
    config = deepspeed_config(trainer) or {}
    return int(config.get("zero_optimization", {}).get("stage", 0))


def offloads_optimizer(trainer: Any) -> bool:
    config = deepspeed_config(trainer) or {}
    device = config.get("zero_optimization", {}).get("offload_optimizer", {}).get("device", "none")
    return device not in (None, "none")


# -- full-weight export ---------------------------------------------------------------------------------
def _zero3_partitioned(model: torch.nn.Module) -> bool:
    return any(hasattr(p, "ds_id") for p in model.parameters())


def _sharded(model: torch.nn.Module) -> bool:
    """FSDP1 (flat parameters) or FSDP2 / tensor parallel (DTensor parameters)."""
    from torch.distributed.fsdp import FullyShardedDataParallel

    if any(isinstance(m, FullyShardedDataParallel) for m in model.modules()):
        return True
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - torch without DTensor
        return False
    return any(isinstance(p, DTensor) for p in model.parameters())


def full_state_dict(trainer: Any, pl_module: Any) -> dict[str, torch.Tensor] | None:
    """*Collective*: the consolidated Hugging Face state dict of `pl_module.model` on CPU on global rank 0,
    None on the other ranks.

    - single device, DDP, DeepSpeed ZeRO-1/2: parameters are replicated; rank 0 reads its own.
    - FSDP (Lightning's FSDPStrategy: torch FSDP1; FSDP2 / DTensor): `get_model_state_dict` with
      `full_state_dict=True, cpu_offload=True` gathers each unit and moves it to CPU on rank 0 only, so
      rank 0 holds one CPU copy, never a full GPU copy next to its shard.
    - DeepSpeed ZeRO-3: parameters are gathered module by module (`deepspeed.zero.GatheredParameters`)
      and streamed to CPU on rank 0; at most one module's full parameters are on the GPU at a time.
    """
    model = pl_module.model
    is_zero = trainer.is_global_zero
    root = getattr(trainer.strategy, "model", None) or pl_module
    if _zero3_partitioned(model):
        return _gather_zero3(model, is_zero)
    if _sharded(root):
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(root, options=options)
        if not is_zero:
            return None
        # The root is the LightningModule (or its wrapper): its keys start with the attribute `model.`.
        return {k[len("model.") :]: v for k, v in state.items() if k.startswith("model.")}
    if not is_zero:
        return None
    return {k: v.detach() for k, v in model.state_dict().items()}


def _gather_zero3(model: torch.nn.Module, is_zero: bool) -> dict[str, torch.Tensor] | None:
    import deepspeed

    wanted = set(model.state_dict().keys())
    state: dict[str, torch.Tensor] = {}
    done: dict[int, str] = {}
    for prefix, module in model.named_modules():
        params = list(module.named_parameters(prefix=prefix, recurse=False))
        if params:
            with deepspeed.zero.GatheredParameters([p for _, p in params], modifier_rank=None):
                if is_zero:
                    for name, param in params:
                        if name not in wanted:
                            continue
                        if id(param) in done:  # tied weights: one copy, the second name points at it
                            state[name] = state[done[id(param)]]
                            continue
                        state[name] = param.detach().to("cpu", copy=True)
                        done[id(param)] = name
        if is_zero:
            for name, buffer in module.named_buffers(prefix=prefix, recurse=False):
                if name in wanted:
                    state[name] = buffer.detach().to("cpu", copy=True)
    return state if is_zero else None


# -- gradient norm ----------------------------------------------------------------------------------------
def grad_norm(module: torch.nn.Module) -> float | None:
    """The global L2 norm of the gradients, whatever holds them; None where the strategy keeps them out of
    `param.grad` (DeepSpeed). *Collective* under FSDP1 (one all-reduce of the squared local norms)."""
    params = list(module.parameters())
    if _zero3_partitioned(module):
        return None
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return None
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    full_tensor = getattr(norm, "full_tensor", None)
    if full_tensor is not None:  # FSDP2: DTensor gradients; the norm is a partial DTensor
        return float(full_tensor())
    from torch.distributed.fsdp import FullyShardedDataParallel, ShardingStrategy

    fsdp = [m for m in module.modules() if isinstance(m, FullyShardedDataParallel)]
    if fsdp and is_distributed() and fsdp[0].sharding_strategy != ShardingStrategy.NO_SHARD:
        # Each rank holds a shard of every gradient; hybrid sharding replicates shards across nodes, so
        # the sum runs over the shard group only.
        squared = norm.float().pow(2)
        dist.all_reduce(squared, group=fsdp[0].process_group)
        return float(squared.sqrt())
    return float(norm)
