"""Chat-template formatting with assistant-only labels.

The prompt is rendered with `add_generation_prompt=True`; the full conversation (prompt + assistant turn)
must start with exactly those tokens. A template that breaks this prefix property would silently shift
the labels, so it is an error. Targets are the assistant tokens up to and including the tokenizer's EOS:
if the template's assistant turn does not contain EOS, EOS is appended (the paper trains on it, and a
model that never learns to emit EOS never stops; see the open-r1 reports in DESIGN.md). Tokens the
template writes after the last EOS (e.g. a trailing newline) are not trained on.

Labels are returned *unshifted* (aligned with input_ids); batching shifts them per sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sftlab.data.example import DataError, Example

IGNORE_INDEX = -100


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: tuple[int, ...]
    # 1 where the token is a training target (assistant tokens and EOS), 0 elsewhere.
    target_mask: tuple[int, ...]
    source: str = ""

    def __len__(self) -> int:
        return len(self.input_ids)

    @property
    def num_targets(self) -> int:
        return sum(self.target_mask)


def _ids(rendered: Any) -> list[int]:
    # transformers 5 returns a BatchEncoding-like mapping from apply_chat_template(tokenize=True).
    if isinstance(rendered, dict) or hasattr(rendered, "keys"):
        rendered = rendered["input_ids"]
    return list(rendered)


def tokenize_example(example: Example, tokenizer: Any) -> TokenizedExample:
    """Render `example` with the tokenizer's chat template and mark the assistant tokens as targets."""
    if tokenizer.eos_token_id is None:
        raise DataError(f"tokenizer {tokenizer.name_or_path!r} has no eos_token; set one before training")
    prompt = [dict(m) for m in example.prompt]
    prompt_ids = _ids(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True))
    full_ids = _ids(
        tokenizer.apply_chat_template(
            [*prompt, {"role": "assistant", "content": example.response}], tokenize=True
        )
    )
    if full_ids[: len(prompt_ids)] != prompt_ids:
        raise DataError(
            f"the chat template of {tokenizer.name_or_path!r} does not render the prompt as a prefix of the "
            f"conversation ({example.source or 'example'}), so assistant labels cannot be placed safely; use a "
            "template whose generation prompt is a prefix of the rendered assistant turn"
        )
    response_ids = full_ids[len(prompt_ids) :]
    eos = tokenizer.eos_token_id
    last_eos = max((i for i, t in enumerate(response_ids) if t == eos), default=-1)
    response_ids = response_ids[: last_eos + 1] if last_eos >= 0 else [*response_ids, eos]
    if len(response_ids) <= 1:
        raise DataError(f"the response renders to no tokens ({example.source or 'example'})")
    input_ids = tuple(prompt_ids + response_ids)
    target_mask = (0,) * len(prompt_ids) + (1,) * len(response_ids)
    return TokenizedExample(input_ids=input_ids, target_mask=target_mask, source=example.source)


def shifted_labels(example: TokenizedExample) -> list[int]:
    """Next-token labels aligned with input positions: position t predicts token t+1 when that token is a
    target; the last position of a sequence predicts nothing. Shifting per sequence keeps packed
    sequences from predicting across their boundary."""
    ids, mask = example.input_ids, example.target_mask
    labels = [ids[t + 1] if mask[t + 1] else IGNORE_INDEX for t in range(len(ids) - 1)]
    labels.append(IGNORE_INDEX)
    return labels
