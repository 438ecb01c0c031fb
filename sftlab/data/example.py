"""The unit every data regime produces: a chat prompt and the assistant response to train on."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# The paper's user-turn instruction (arXiv 2604.06628, §3 and the authors' released training scripts).
PAPER_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


class DataError(ValueError):
    """Bad input data; the message names the source file and row."""


@dataclass(frozen=True)
class Example:
    """One SFT example. `prompt` holds chat messages ending with the user turn; `response` is the
    assistant turn whose tokens (plus EOS) are the training targets. `source` says where it came from
    (`file.jsonl:17`) so errors downstream can name it. `reference` carries the gold answer for eval."""

    prompt: tuple[Mapping[str, str], ...]
    response: str
    source: str = ""
    reference: Any = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f" ({self.source})" if self.source else ""
        if not self.prompt:
            raise DataError(f"example has no prompt messages{where}")
        for message in self.prompt:
            if message.get("role") not in ("system", "user", "assistant"):
                raise DataError(
                    f"prompt message has role {message.get('role')!r}{where}; use system/user/assistant"
                )
            if not isinstance(message.get("content"), str):
                raise DataError(
                    f"prompt message content must be a string, got {message.get('content')!r}{where}"
                )
        if self.prompt[-1]["role"] != "user":
            raise DataError(f"the prompt must end with a user turn, got {self.prompt[-1]['role']!r}{where}")
        if not isinstance(self.response, str):
            raise DataError(f"response must be a string, got {type(self.response).__name__}{where}")
        if not self.response.strip():
            raise DataError(f"response is empty{where}; drop the row or fix the data")


def user_prompt(question: str, instruction: str | None = PAPER_INSTRUCTION) -> tuple[dict[str, str], ...]:
    """A single user turn: the question, then the instruction on its own line (paper's format)."""
    content = question if not instruction else f"{question.rstrip()}\n{instruction}"
    return ({"role": "user", "content": content},)


def split_chat(messages: Sequence[Mapping[str, Any]], source: str) -> tuple[tuple[dict[str, str], ...], str]:
    """Split a chat list whose last message is the assistant turn into (prompt messages, response)."""
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise DataError(f"expected a non-empty list of chat messages, got {messages!r:.80} ({source})")
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "assistant":
        raise DataError(f"row has no assistant turn at the end of its messages ({source}); add the response")
    prompt = tuple({"role": str(m.get("role")), "content": m.get("content")} for m in messages[:-1])
    return prompt, last.get("content")
