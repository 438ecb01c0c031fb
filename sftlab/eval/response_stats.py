"""Response metrics computed on every eval: length statistics, how generation ended, thinking vs answer
length, repetition and reasoning behaviours.

Response length is the paper's diagnostic of the optimisation stage (a spike = surface imitation of long
CoT; a fall and plateau = genuine reasoning), so it is logged next to accuracy for every task.

Definitions (all shares are over every sample):
- `thinking_tokens_mean` / `answer_tokens_mean`: a Generation carries only its text and token ids, not
  where `</think>` falls among the ids, so each response's tokens are split in proportion to characters:
  thinking = num_tokens x len(text before the last `</think>`) / len(text), answer = the rest. A response
  with no `</think>` is all answer; one with `<think>` but no `</think>` (clipped mid-thought) all thinking.
- `no_eos_rate`: the response did not end with EOS: clipped at max_tokens (finish_reason "length") or
  failed (finish_reason "error"). `clip_rate` is the "length" part alone.
- `repetition_rate`: a response is repetitive when some 20-word n-gram (whitespace-split words) occurs
  at least 3 times -- the degenerate loops long-CoT imitation produces.
- `behaviour/{backtracking,verification,decomposition}_rate`: share of responses showing each behaviour
  (`sftlab.eval.behaviours`, after Gandhi et al. 2025).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from sftlab.eval.answer_extraction import THINK_CLOSE, THINK_OPEN
from sftlab.eval.behaviours import BEHAVIOUR_PHRASES, behaviours
from sftlab.eval.types import Generation

REPEAT_NGRAM, REPEAT_MIN_COUNT = 20, 3


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default method) of a non-empty sequence."""
    if not values:
        raise ValueError("quantile of an empty sequence")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def response_stats(generations: Sequence[Generation]) -> dict[str, float]:
    """Token-length statistics, clip rate (stopped by max_tokens) and error rate over all samples."""
    if not generations:
        return {}
    lengths = [float(g.num_tokens) for g in generations]
    n = len(generations)
    split = [thinking_answer_tokens(g) for g in generations]
    shown = [behaviours(g.text) for g in generations]
    return {
        "response_tokens_mean": sum(lengths) / n,
        "response_tokens_p50": quantile(lengths, 0.5),
        "response_tokens_p90": quantile(lengths, 0.9),
        "response_tokens_max": max(lengths),
        "clip_rate": sum(g.finish_reason == "length" for g in generations) / n,
        "generation_error_rate": sum(g.finish_reason == "error" for g in generations) / n,
        "no_eos_rate": sum(g.finish_reason != "stop" for g in generations) / n,
        "thinking_tokens_mean": sum(t for t, _ in split) / n,
        "answer_tokens_mean": sum(a for _, a in split) / n,
        "repetition_rate": sum(is_repetitive(g.text) for g in generations) / n,
        **{f"behaviour/{name}_rate": sum(s[name] for s in shown) / n for name in BEHAVIOUR_PHRASES},
    }


def thinking_answer_tokens(generation: Generation) -> tuple[float, float]:
    """(thinking, answer) token counts, split in proportion to characters (module docstring)."""
    text, total = generation.text, float(generation.num_tokens)
    if not text:
        return 0.0, total
    cut = text.rfind(THINK_CLOSE)
    if cut < 0:
        return (total, 0.0) if THINK_OPEN in text else (0.0, total)
    thinking = total * cut / len(text)
    return thinking, total - thinking


def is_repetitive(text: str, n: int = REPEAT_NGRAM, min_count: int = REPEAT_MIN_COUNT) -> bool:
    """Whether some n-gram of whitespace words occurs at least `min_count` times."""
    words = text.split()
    if len(words) < n * min_count:
        return False
    counts = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    return max(counts.values()) >= min_count
