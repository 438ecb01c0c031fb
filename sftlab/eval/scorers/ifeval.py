"""Score IFEval responses (Zhou et al. 2023, arXiv 2311.07911): does the answer follow every verifiable
instruction of its prompt?

Reference: `{"instruction_id_list": [...], "kwargs": [...]}`, one kwargs object per instruction, as in the
hub dataset `google/IFEval` (None values mean "not set"). The answer is the text after the last
`</think>` (`split_thinking`), stripped of surrounding whitespace: the blank line a chat template puts after
`</think>` would otherwise be an empty first paragraph for the paragraph checks. A response that opens its
thinking and never closes it (clipped) has no answer, and an empty answer fails every instruction, as in
the original's `response.strip() and ...`.

Strict and loose follow the reference `evaluation_lib.py` (google-research `instruction_following_eval/`
@ 4c429948): strict checks the answer as written; loose passes an instruction when any of eight variants
passes it: the answer, with its first line removed, last line removed, both, each of those four with every
`*` removed. Prompt level: all of a prompt's instructions pass; instruction level: each instruction counts.
The checkers themselves are in `ifeval_instructions`. Knows nothing about backends or Lightning.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sftlab.eval.answer_extraction import THINK_CLOSE, THINK_OPEN, split_thinking
from sftlab.eval.scorers.ifeval_instructions import bind
from sftlab.eval.types import Score

REFERENCE_SHAPE = '{"instruction_id_list": ["punctuation:no_comma", ...], "kwargs": [{...} or null, ...]}'


def parse_reference(reference: Any) -> list[Callable[[str], bool]]:
    """The bound checker of each instruction; ValueError naming every bad field and value at once."""
    if not isinstance(reference, Mapping):
        raise ValueError(f"an IFEval reference must be {REFERENCE_SHAPE}, got {reference!r:.80}")
    ids, kwargs = reference.get("instruction_id_list"), reference.get("kwargs")
    if isinstance(ids, str) or not isinstance(ids, Sequence) or not ids:
        raise ValueError(
            f"IFEval reference field 'instruction_id_list' must be a non-empty list, got {ids!r:.80}"
        )
    if isinstance(kwargs, str) or not isinstance(kwargs, Sequence) or len(kwargs) != len(ids):
        raise ValueError(
            f"IFEval reference field 'kwargs' must be a list with one object per instruction ({len(ids)}), "
            f"got {kwargs!r:.80}"
        )
    checks, problems = [], []
    for instruction_id, instruction_kwargs in zip(ids, kwargs, strict=True):
        check, found = bind(instruction_id, instruction_kwargs)
        checks.append(check)
        problems += found
    if problems:
        raise ValueError(f"invalid IFEval reference: {'; '.join(problems)}")
    return checks  # type: ignore[return-value]  # no problems: every checker is bound


def loose_variants(answer: str) -> list[str]:
    """The eight texts loose scoring tries, in the original's order."""
    lines = answer.split("\n")
    trimmed = [
        answer,
        "\n".join(lines[1:]).strip(),
        "\n".join(lines[:-1]).strip(),
        "\n".join(lines[1:-1]).strip(),
    ]
    return [trimmed[0], trimmed[0].replace("*", ""), *trimmed[1:], *(t.replace("*", "") for t in trimmed[1:])]


def score_ifeval(response: str, reference: Mapping[str, Any]) -> Score:
    """Prompt-level strict verdict; `details` has per-instruction strict and loose results."""
    checks = parse_reference(reference)
    ids = list(reference["instruction_id_list"])
    answer = split_thinking(response)[1].strip()
    if answer:
        variants = [v for v in loose_variants(answer) if v.strip()]
        strict = [check(answer) for check in checks]
        loose = [s or any(check(v) for v in variants) for s, check in zip(strict, checks, strict=True)]
    else:
        strict = loose = [False] * len(checks)
    details: dict[str, Any] = {"instruction_id_list": ids, "strict": strict, "loose": loose}
    details["prompt_strict"], details["prompt_loose"] = all(strict), all(loose)
    if not answer:
        clipped = THINK_CLOSE not in response and THINK_OPEN in response
        details["reason"] = "thinking never closed: no answer" if clipped else "empty answer"
    return Score(correct=all(strict), extracted=answer or None, details=details)


def ifeval_metrics(
    results: Sequence[tuple[Sequence[str], Sequence[bool], Sequence[bool]]],
) -> dict[str, float]:
    """IFEval's four accuracies (and strict instruction accuracy per instruction category, the part of the
    id before ':', as the original report's first tier) from (ids, strict, loose) per response.

    `score`, the general group's headline metric, is the prompt-level strict accuracy."""
    if not results:
        return {}
    prompts = len(results)
    instructions = sum(len(ids) for ids, _, _ in results)
    metrics = {
        "prompt_level_strict_acc": sum(all(strict) for _, strict, _ in results) / prompts,
        "inst_level_strict_acc": sum(sum(strict) for _, strict, _ in results) / instructions,
        "prompt_level_loose_acc": sum(all(loose) for _, _, loose in results) / prompts,
        "inst_level_loose_acc": sum(sum(loose) for _, _, loose in results) / instructions,
    }
    by_category: dict[str, list[bool]] = defaultdict(list)
    for ids, strict, _ in results:
        for instruction_id, passed in zip(ids, strict, strict=True):
            by_category[instruction_id.split(":")[0]].append(bool(passed))
    for category, passed in sorted(by_category.items()):
        metrics[f"inst_level_strict_acc/{category}"] = sum(passed) / len(passed)
    metrics["score"] = metrics["prompt_level_strict_acc"]
    return metrics
