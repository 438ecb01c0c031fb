"""ChatEndpoint: one judge prompt in, the reply text out, through any OpenAI-compatible chat endpoint.

The transport shared by every HTTP judge (the Qi et al. rubric judge, the TruthfulQA grader): a single user
message to `{base_url}/chat/completions`, temperature 0, a bounded number of retries with exponential
backoff for transient failures (connection errors, time-outs, HTTP 408/409/429/5xx; a server's
Retry-After wins), and client errors (HTTP 400, ...) raised at once. Transport is the standard library's
urllib, so no OpenAI SDK is needed; the API key is read from the environment variable named by
`api_key_env` (never from config files).

A request that cannot produce a reply raises `ChatRequestFailed`, which callers turn into a judge error;
they never read it as a verdict. Knows nothing about prompts, rubrics or verdicts.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)

# Status codes worth retrying: rate limits, time-outs and server-side failures.
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
_MAX_DELAY_S = 60.0

T = TypeVar("T")
R = TypeVar("R")


class ChatRequestFailed(Exception):
    """A request that could not produce a reply; `body` is the server's reply text, if any."""

    def __init__(self, message: str, body: str) -> None:
        super().__init__(message)
        self.body = body


@dataclass(frozen=True)
class ChatEndpoint:
    """Where and how to send judge prompts (see the module docstring). Build it, then call `problems()`
    to report every bad setting at once before use.

    Args:
        base_url: API root ending in `/v1` (OpenAI, a `vllm serve` judge, a proxy); a trailing `/` is fine.
        model: the model name the endpoint serves.
        api_key_env: environment variable holding the API key (a Bearer token); None for a local server.
        max_tokens: reply budget.
        timeout_s: per-request time-out in seconds.
        max_retries: retries after a transient failure.
        backoff_s: first retry delay, doubled after each retry (capped at 60 s).
    """

    base_url: str
    model: str
    api_key_env: str | None
    max_tokens: int
    timeout_s: float
    max_retries: int
    backoff_s: float

    def problems(self, key_hint: str = "") -> list[str]:
        """Every bad setting, each naming the value and the fix; `key_hint` extends the missing-key one."""
        problems = []
        if not self.base_url.startswith(("http://", "https://")):
            problems.append(f"base_url must start with http:// or https://, got base_url={self.base_url!r}")
        if not self.model:
            problems.append(f"model must name the model the endpoint serves, got model={self.model!r}")
        if self.max_tokens < 1:
            problems.append(f"max_tokens must be >= 1, got max_tokens={self.max_tokens}")
        if self.timeout_s <= 0:
            problems.append(f"timeout_s must be > 0, got timeout_s={self.timeout_s}")
        if self.max_retries < 0:
            problems.append(f"max_retries must be >= 0, got max_retries={self.max_retries}")
        if self.backoff_s < 0:
            problems.append(f"backoff_s must be >= 0, got backoff_s={self.backoff_s}")
        if self.api_key_env and not os.environ.get(self.api_key_env):
            problems.append(
                f"environment variable {self.api_key_env} is not set; export the judge's API key there, "
                f"or set api_key_env: null for a local server without keys{key_hint}"
            )
        return problems

    @property
    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/chat/completions"

    def complete(self, content: str) -> str:
        """The reply to one user message; raises `ChatRequestFailed` when there is none."""
        body = json.dumps(
            {
                "model": self.model,
                "messages": [{"role": "user", "content": content}],
                "temperature": 0,
                "max_tokens": self.max_tokens,
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            headers["Authorization"] = f"Bearer {os.environ.get(self.api_key_env, '')}"
        for attempt in range(self.max_retries + 1):
            delay = min(_MAX_DELAY_S, self.backoff_s * 2**attempt)
            try:
                return self._post(body, headers)
            except _Transient as exc:
                failure, delay = exc.failure, exc.delay if exc.delay is not None else delay
            if attempt < self.max_retries:
                log.warning(
                    "judge %s: %s; retry %d/%d in %.1f s",
                    self.model,
                    failure,
                    attempt + 1,
                    self.max_retries,
                    delay,
                )
                time.sleep(delay)
        raise failure

    def _post(self, body: bytes, headers: dict[str, str]) -> str:
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return _message_content(response.read().decode("utf-8", errors="replace"))
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", errors="replace")
            failure = ChatRequestFailed(f"HTTP {exc.code} from {self.url}: {text[:300]}", text)
            if exc.code not in RETRY_STATUS:
                raise failure from None
            raise _Transient(failure, _retry_after(exc.headers)) from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Transient(ChatRequestFailed(f"request to {self.url} failed: {reason}", ""), None) from None


def map_concurrently(fn: Callable[[T], R], items: Sequence[T], concurrency: int, name: str) -> list[R]:
    """`[fn(x) for x in items]`, in order, `concurrency` calls at a time on threads named `name`."""
    if len(items) <= 1 or concurrency == 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix=name) as pool:
        return list(pool.map(fn, items))


class _Transient(Exception):
    """A failure worth retrying; `delay` is the server's Retry-After, if it sent one."""

    def __init__(self, failure: ChatRequestFailed, delay: float | None) -> None:
        super().__init__(str(failure))
        self.failure = failure
        self.delay = delay


def _message_content(payload: str) -> str:
    try:
        content = json.loads(payload)["choices"][0]["message"]["content"]
    except (json.JSONDecodeError, KeyError, IndexError, TypeError):
        raise ChatRequestFailed(f"not a chat-completions response: {payload[:300]}", payload) from None
    return content if isinstance(content, str) else ""


def _retry_after(headers: Any) -> float | None:
    try:
        return min(_MAX_DELAY_S, max(0.0, float(headers.get("Retry-After"))))
    except (TypeError, ValueError):
        return None
