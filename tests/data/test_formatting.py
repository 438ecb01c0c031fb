"""Chat formatting: assistant-only targets, EOS trained on, prefix property checked, bad rows named."""

from __future__ import annotations

import pytest

from sftlab.data.batching import collate
from sftlab.data.example import DataError, Example, split_chat, user_prompt
from sftlab.data.formatting import IGNORE_INDEX, shifted_labels, tokenize_example


def test_targets_are_the_assistant_tokens_and_eos(tokenizer) -> None:
    ex = Example(prompt=user_prompt("What is 2+3?"), response="<think>2+3=5</think>\\boxed{5}")
    tok = tokenize_example(ex, tokenizer)
    targets = [t for t, m in zip(tok.input_ids, tok.target_mask, strict=True) if m]
    assert targets[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(targets[:-1]) == "<think>2+3=5</think>\\boxed{5}"
    prompt = [t for t, m in zip(tok.input_ids, tok.target_mask, strict=True) if not m]
    assert "What is 2+3?" in tokenizer.decode(prompt)
    assert tokenizer.decode(prompt).endswith("assistant\n")


def test_labels_are_shifted_within_each_sequence(tokenizer) -> None:
    a = tokenize_example(Example(prompt=user_prompt("a"), response="first"), tokenizer)
    b = tokenize_example(Example(prompt=user_prompt("b"), response="second"), tokenizer)
    labels = shifted_labels(a)
    assert labels[-1] == IGNORE_INDEX  # the last token of a sequence predicts nothing
    first_target = a.target_mask.index(1)
    assert labels[first_target - 1] == a.input_ids[first_target]
    packed = collate([a, b], "packed", 0)
    # position ids restart at the second sequence; its first token is no target of the first sequence
    assert packed["position_ids"][0, len(a)].item() == 0
    assert packed["labels"][0, len(a) - 1].item() == IGNORE_INDEX
    assert packed["num_target_tokens"] == a.num_targets + b.num_targets


class BrokenTemplateTokenizer:
    """Wraps a tokenizer whose generation prompt is not a prefix of the rendered conversation."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.eos_token_id = inner.eos_token_id
        self.name_or_path = "broken"

    def apply_chat_template(self, messages, add_generation_prompt=False, tokenize=True):
        ids = list(
            self.inner.apply_chat_template(
                messages, add_generation_prompt=add_generation_prompt, tokenize=True
            )["input_ids"]
        )
        return [999, *ids] if add_generation_prompt else ids


def test_a_template_without_the_prefix_property_is_an_error(tokenizer) -> None:
    ex = Example(prompt=user_prompt("q"), response="r", source="data.jsonl:7")
    with pytest.raises(DataError, match="prefix.*data.jsonl:7"):
        tokenize_example(ex, BrokenTemplateTokenizer(tokenizer))


@pytest.mark.parametrize(
    ("response", "match"),
    [("", "empty"), ("   ", "empty"), (None, "must be a string"), (42, "must be a string")],
)
def test_bad_responses_name_the_row(response, match) -> None:
    with pytest.raises(DataError, match=f"{match}.*rows.jsonl:3"):
        Example(prompt=user_prompt("q"), response=response, source="rows.jsonl:3")


def test_a_chat_without_assistant_turn_names_the_row() -> None:
    with pytest.raises(DataError, match="no assistant turn.*f.jsonl:9"):
        split_chat([{"role": "user", "content": "hi"}], "f.jsonl:9")
    prompt, response = split_chat(
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "f.jsonl:1"
    )
    assert response == "yo" and prompt == ({"role": "user", "content": "hi"},)


def test_user_prompt_appends_the_paper_instruction() -> None:
    (turn,) = user_prompt("Solve x.")
    assert (
        turn["content"] == "Solve x.\nPlease reason step by step, and put your final answer within \\boxed{}."
    )
    assert user_prompt("Solve x.", instruction="")[0]["content"] == "Solve x."
