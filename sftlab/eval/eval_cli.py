"""`sftlab eval`: evaluate a saved model (folder, hub id or built-in name) on a suite offline.

    python -m sftlab eval --model PATH_OR_HUB_ID --suite configs/eval/paper.yaml --output DIR \
        [--backend vllm|hf] [--limit N] [--max-tokens N]

A suite is a YAML file with a top-level `tasks:` list of `{class_path, init_args}` -- the same shape as
GenerationEval's `tasks`, so a list can be pasted between them; jsonargparse validates and builds it. Each
task runs through `evaluate`, the function the in-training eval calls, so the numbers agree. Writes
`DIR/<task>.jsonl` (one row per sample: generation, score, details), `DIR/summary.json` (per-task metrics
and the flattened `eval/...` keys with the group aggregates) and `DIR/summary.md` (a table).
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
from pathlib import Path
from typing import Any

import yaml

from sftlab.eval.evaluate import GROUP_HEADLINE, TaskResult, evaluate, flatten_metrics

# The backends the flag can name; any other backend can be used through the Lightning config instead.
BACKENDS = {
    "vllm": "sftlab.eval.backends.vllm_backend.VLLMBackend",
    "hf": "sftlab.eval.backends.hf_backend.HFBackend",
}
# vLLM needs a context length: the longest generation budget plus this much room for the prompt.
PROMPT_ROOM_TOKENS = 4096


class EvalCliError(ValueError):
    """Bad user input to `sftlab eval`."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sftlab eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="model folder, hub id 'org/name' or built-in name")
    p.add_argument("--suite", required=True, help="suite YAML with a top-level `tasks:` list")
    p.add_argument("--output", required=True, help="output folder")
    p.add_argument("--backend", default="vllm", help=f"generation backend: {' | '.join(BACKENDS)}")
    p.add_argument("--limit", type=int, default=None, help="first N problems of every task")
    p.add_argument("--max-tokens", type=int, default=None, help="override every task's max_tokens")
    return p


def load_suite(path: str | Path, *, limit: int | None = None, max_tokens: int | None = None) -> list[Any]:
    """The task objects of a suite YAML, with the `limit` / `max_tokens` overrides applied to init_args."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise EvalCliError(f"suite file {file} does not exist; see configs/eval/ for examples")
    data = yaml.safe_load(file.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("tasks"), list) or not data["tasks"]:
        raise EvalCliError(f"{file}: expected a top-level `tasks:` list of {{class_path, init_args}}")
    entries = []
    for entry in data["tasks"]:
        if not isinstance(entry, dict) or "class_path" not in entry:
            raise EvalCliError(f"{file}: every task needs a class_path, got {entry!r:.120}")
        init_args = dict(entry.get("init_args") or {})
        params = _init_params(entry["class_path"])
        if limit is not None:
            # Tasks that generate their problems (Countdown) size them with num_problems.
            key = "limit" if "limit" in params else "num_problems" if "num_problems" in params else None
            if key is None:
                raise EvalCliError(
                    f"{entry['class_path']} takes neither limit nor num_problems; drop --limit"
                )
            init_args[key] = limit
        if max_tokens is not None:
            init_args["max_tokens"] = max_tokens
        entries.append({"class_path": entry["class_path"], "init_args": init_args})
    return build_tasks(entries, where=str(file))


def build_tasks(entries: list[dict[str, Any]], where: str = "suite") -> list[Any]:
    """Validate `{class_path, init_args}` entries against `list[EvalTask]` with jsonargparse and build them."""
    from jsonargparse import ArgumentParser

    from sftlab.eval.task import EvalTask

    parser = ArgumentParser(exit_on_error=False)
    parser.add_argument("--tasks", type=list[EvalTask])
    try:
        cfg = parser.parse_object({"tasks": entries})
    except Exception as exc:  # jsonargparse names the bad class_path / init arg
        raise EvalCliError(f"{where}: invalid tasks: {exc}") from None
    tasks = list(parser.instantiate(cfg).tasks)
    names = [t.name for t in tasks]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise EvalCliError(
            f"{where}: task names must be unique (they name the output files), got {duplicates}"
        )
    return tasks


def _init_params(class_path: str) -> set[str]:
    import importlib

    module, _, name = class_path.rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        raise EvalCliError(f"unknown task class {class_path!r}; give a full import path") from None
    return set(inspect.signature(cls).parameters)


def make_backend(name: str, max_tokens: int) -> Any:
    if name not in BACKENDS:
        raise EvalCliError(f"unknown backend {name!r}; choose one of: {', '.join(BACKENDS)}")
    import importlib

    module, _, cls = BACKENDS[name].rpartition(".")
    backend_cls = getattr(importlib.import_module(module), cls)
    if "max_model_len" in inspect.signature(backend_cls).parameters:
        return backend_cls(max_model_len=max_tokens + PROMPT_ROOM_TOKENS)
    return backend_cls()


def run_suite(model: str, tasks: list[Any], backend: Any, output: Path) -> list[TaskResult]:
    """Evaluate every task with one started backend and write the per-sample rows and summaries."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    output.mkdir(parents=True, exist_ok=True)
    results = []
    backend.start(model)
    try:
        for task in tasks:
            result = evaluate(task, backend, tokenizer)
            with (output / f"{task.name}.jsonl").open("w") as f:
                for record in result.records:
                    f.write(json.dumps({"task": task.name, **record}, default=str) + "\n")
            print(
                f"{task.name}: accuracy {result.metrics['accuracy']:.4f} over {len(result.records)} samples"
            )
            results.append(result)
    finally:
        backend.close()
    write_summary(model, results, output)
    return results


def write_summary(model: str, results: list[TaskResult], output: Path) -> dict[str, Any]:
    summary = {
        "model": model,
        "tasks": [
            {
                "task": r.task,
                "group": r.group,
                "version": r.version,
                "n": len(r.records),
                "problems": len({rec["id"] for rec in r.records}),
                "metrics": r.metrics,
            }
            for r in results
        ],
        "metrics": flatten_metrics(results),
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2, default=_json_float) + "\n")
    lines = [
        f"# Evaluation of `{model}`",
        "",
        "| task | group | version | n | accuracy | response_tokens_mean | clip_rate |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in summary["tasks"]:
        m = row["metrics"]
        lines.append(
            f"| {row['task']} | {row['group']} | {row['version']} | {row['n']} | {_fmt(m.get('accuracy'))} | "
            f"{_fmt(m.get('response_tokens_mean'), 1)} | {_fmt(m.get('clip_rate'))} |"
        )
    groups = sorted({r.group for r in results})
    lines += ["", "| group | headline | value |", "|---|---|---|"]
    for group in groups:
        headline = GROUP_HEADLINE.get(group, "accuracy")
        value = summary["metrics"].get(f"eval/{group}/{headline}")
        lines.append(f"| {group} | {headline} | {_fmt(value)} |")
    (output / "summary.md").write_text("\n".join(lines) + "\n")
    return summary


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _json_float(value: Any) -> Any:
    return str(value)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from sftlab.models import resolve_model

    problems = []
    if args.backend not in BACKENDS:
        problems.append(f"unknown backend {args.backend!r}; choose one of: {', '.join(BACKENDS)}")
    if args.limit is not None and args.limit < 1:
        problems.append(f"--limit must be >= 1, got --limit={args.limit}")
    if args.max_tokens is not None and args.max_tokens < 1:
        problems.append(f"--max-tokens must be >= 1, got --max-tokens={args.max_tokens}")
    if problems:
        raise EvalCliError("; ".join(problems))
    tasks = load_suite(args.suite, limit=args.limit, max_tokens=args.max_tokens)
    model = resolve_model(args.model)
    backend = make_backend(args.backend, max(t.sampling.max_tokens for t in tasks))
    run_suite(model, tasks, backend, Path(args.output))
    print(f"wrote {args.output}/summary.md")
    return 0
