"""The named benchmarks: an explicit table from name to task class, one file per benchmark under
`sftlab/eval/tasks/`. Each class carries a `version` bumped when its prompt, data or scorer changes.

`build_task(name, **init_args)` instantiates one; an unknown name fails with "did you mean" and the list
of known names. Knows nothing about backends or Lightning.
"""

from __future__ import annotations

import difflib
from typing import Any

from sftlab.eval.tasks.aime24 import Aime24Task
from sftlab.eval.tasks.aime25 import Aime25Task
from sftlab.eval.tasks.alpacaeval import AlpacaEvalTask
from sftlab.eval.tasks.countdown import CountdownTask
from sftlab.eval.tasks.gpqa_diamond import GpqaDiamondTask
from sftlab.eval.tasks.gsm8k import Gsm8kTask
from sftlab.eval.tasks.halueval import HaluEvalTask
from sftlab.eval.tasks.ifeval import IFEvalTask
from sftlab.eval.tasks.livecodebench_v2 import LiveCodeBenchV2Task
from sftlab.eval.tasks.math500 import Math500Task
from sftlab.eval.tasks.mmlu_pro import MmluProTask
from sftlab.eval.tasks.truthfulqa import TruthfulQATask

BENCHMARKS: dict[str, type] = {
    "math500": Math500Task,
    "aime24": Aime24Task,
    "aime25": Aime25Task,
    "gsm8k": Gsm8kTask,
    "gpqa_diamond": GpqaDiamondTask,
    "mmlu_pro": MmluProTask,
    "livecodebench_v2": LiveCodeBenchV2Task,
    "countdown": CountdownTask,
    "halueval": HaluEvalTask,
    "truthfulqa": TruthfulQATask,  # needs judge=
    "alpacaeval": AlpacaEvalTask,  # needs reward_model=
    "ifeval": IFEvalTask,
}


class UnknownBenchmarkError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; show it plainly
        return str(self.args[0])


def get_benchmark(name: str) -> type:
    """The task class registered under `name`; unknown names raise with suggestions."""
    try:
        return BENCHMARKS[name]
    except KeyError:
        close = difflib.get_close_matches(name, BENCHMARKS, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}? " if close else ""
        raise UnknownBenchmarkError(
            f"unknown benchmark {name!r}; {hint}known benchmarks: {', '.join(sorted(BENCHMARKS))}"
        ) from None


def build_task(name: str, **init_args: Any) -> Any:
    """An instance of the benchmark `name` with `init_args` passed to its constructor."""
    return get_benchmark(name)(**init_args)
