"""The multiple-choice prompt shared by GPQA-Diamond and MMLU-Pro: the question, the options as
"(A) ..." lines, and an instruction to put the letter in \\boxed{} (sftlab's wording, matching the
paper's boxed-answer convention so one extraction rule serves every task)."""

from __future__ import annotations

from collections.abc import Sequence

CHOICE_INSTRUCTION = "Please reason step by step, and put your final answer (the letter of the correct option) within \\boxed{}."


def choice_prompt(question: str, options: Sequence[str], letters: str) -> str:
    lines = [f"({letter}) {str(option).strip()}" for letter, option in zip(letters, options, strict=False)]
    return question.rstrip() + "\n\n" + "\n".join(lines)
