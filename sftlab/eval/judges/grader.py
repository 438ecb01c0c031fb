"""Graders: a judge model as plain text in, text out, for tasks that score with their own rubric.

The harmfulness judges (`Judge`, base.py) decide one thing and own their prompt. Other judged tasks
(TruthfulQA's truthful/informative rubric) own the prompt and its parser themselves and only need a model
to answer it: that is a `Grader`. It takes finished judge prompts and returns each raw reply, or why there
is none; it never interprets a reply. Two graders reuse the judges' plumbing:

- `ChatGrader`: any OpenAI-compatible chat endpoint (OpenAI, a `vllm serve` judge), through `ChatEndpoint`.
- `BackendGrader`: a local model through a `GenerationBackend`, through `LocalChatModel`.

Knows nothing about tasks, rubrics or metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from sftlab.eval.backends.base import GenerationBackend
from sftlab.eval.judges.chat_api import ChatEndpoint, ChatRequestFailed, map_concurrently
from sftlab.eval.judges.local_model import LocalChatModel
from sftlab.eval.types import SamplingConfig


@dataclass(frozen=True)
class GraderReply:
    """The judge model's reply to one prompt; `error` says why there is no usable reply (transport failure,
    failed generation) and `text` is then whatever was received."""

    text: str
    error: str | None = None


@runtime_checkable
class Grader(Protocol):
    """A judge model. `name` goes into each record so runs judged by different models stay apart."""

    name: str

    def complete_many(self, prompts: Sequence[str]) -> list[GraderReply]:
        """One reply per prompt (a single user message each), in order. Failures are replies with `error`
        set; only misconfiguration raises."""
        ...


class ChatGrader:
    """A judge model behind an OpenAI-compatible chat endpoint, greedy (temperature 0).

    Args:
        model: the judge model name the endpoint serves (e.g. "gpt-4o-2024-08-06", or the path given to
            `vllm serve`). Verdicts shift between judges: compare runs judged by the same model.
        base_url: API root ending in `/v1`; requests go to `{base_url}/chat/completions`.
        api_key_env: environment variable holding the API key; None for a local server that needs none.
            Checked when the grader is built, so a missing key fails before training.
        max_tokens: reply budget (a reasoning judge needs room to think before its verdict).
        timeout_s: per-request time-out in seconds.
        max_retries: retries after a transient failure (connection error, time-out, HTTP 408/409/429/5xx).
        backoff_s: first retry delay, doubled after each retry (capped at 60 s).
        concurrency: parallel requests in `complete_many`.
    """

    def __init__(
        self,
        model: str,
        base_url: str = "https://api.openai.com/v1",
        api_key_env: str | None = "OPENAI_API_KEY",
        max_tokens: int = 1024,
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 2.0,
        concurrency: int = 8,
    ) -> None:
        self.endpoint = ChatEndpoint(
            base_url=base_url.rstrip("/"),
            model=model,
            api_key_env=api_key_env,
            max_tokens=max_tokens,
            timeout_s=timeout_s,
            max_retries=max_retries,
            backoff_s=backoff_s,
        )
        problems = self.endpoint.problems()
        if concurrency < 1:
            problems.append(f"concurrency must be >= 1, got concurrency={concurrency}")
        if problems:
            raise ValueError("invalid ChatGrader: " + "; ".join(problems))
        self.name = f"chat:{model}"
        self.concurrency = concurrency

    def complete(self, prompt: str) -> GraderReply:
        try:
            return GraderReply(text=self.endpoint.complete(prompt))
        except ChatRequestFailed as exc:
            return GraderReply(text=exc.body, error=str(exc))

    def complete_many(self, prompts: Sequence[str]) -> list[GraderReply]:
        return map_concurrently(self.complete, prompts, self.concurrency, "chat-grader")


class BackendGrader:
    """A local judge model run through a generation backend, greedy; each prompt is one user turn rendered
    with the model's chat template and a generation prompt.

    Args:
        model: judge model folder or hub id.
        backend: generation backend; default `VLLMBackend()`. In-training, this is a second engine next
            to the policy's: budget its memory (`gpu_memory_utilization`).
        tokenizer: tokenizer folder/hub id when it differs from `model`.
        max_tokens: reply budget; a reply cut off at this budget is still parsed (and usually malformed).
    """

    def __init__(
        self,
        model: str,
        backend: GenerationBackend | None = None,
        tokenizer: str | None = None,
        max_tokens: int = 1024,
    ) -> None:
        if max_tokens < 1:
            raise ValueError(f"max_tokens must be >= 1, got max_tokens={max_tokens}")
        if backend is None:
            from sftlab.eval.backends.vllm_backend import VLLMBackend

            backend = VLLMBackend()
        sampling = SamplingConfig(n=1, temperature=0.0, top_p=1.0, max_tokens=max_tokens)
        self.chat = LocalChatModel(model, backend, tokenizer or model, sampling)
        self.name = f"local:{model}"

    def complete_many(self, prompts: Sequence[str]) -> list[GraderReply]:
        conversations = [[{"role": "user", "content": prompt}] for prompt in prompts]
        return [
            GraderReply(text=g.text, error="judge generation failed" if g.finish_reason == "error" else None)
            for g in self.chat.generate(conversations, add_generation_prompt=True)
        ]

    def close(self) -> None:
        self.chat.close()
