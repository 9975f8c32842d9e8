"""What every teacher backend takes and returns, and the usage it accounts for."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class TeacherRequest:
    """One chat completion to ask for.

    `assistant_prefix` forces the start of the answer (a local model continues it; an API backend is
    asked to start with it). `json_schema` asks for structured output where the server supports it.
    """

    messages: tuple[dict[str, str], ...]
    max_tokens: int
    temperature: float
    top_p: float
    seed: int
    assistant_prefix: str = ""
    json_schema: dict[str, Any] | None = None

    def cache_key(self, endpoint: str, model: str) -> str:
        """Content address of the request: same endpoint, model, messages and parameters, same key."""
        payload = {"endpoint": endpoint, "model": model, **asdict(self)}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


#: The finish reason of an answer longer than its request's token limit allows (wire.py); its text is dropped.
OVERSIZE = "oversize"


@dataclass(frozen=True)
class TeacherResponse:
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    cached: bool = False


@dataclass(frozen=True)
class TeacherFailure:
    """A request that could not be answered after the retries; recorded, never written as a row."""

    reason: str


@dataclass
class Usage:
    requests_sent: int = 0
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    rate_limited: int = 0  # 429s received
    batch_prompt_tokens: int = 0  # answered through the Batch API, at its discount
    batch_completion_tokens: int = 0
    failure_reasons: dict[str, int] = field(default_factory=dict)

    def record(self, response: TeacherResponse, batch: bool = False) -> None:
        if response.cached:
            self.cache_hits += 1
            return
        self.requests_sent += 1
        if batch:
            self.batch_prompt_tokens += response.prompt_tokens
            self.batch_completion_tokens += response.completion_tokens
        else:
            self.prompt_tokens += response.prompt_tokens
            self.completion_tokens += response.completion_tokens

    def record_failure(self, reason: str) -> None:
        self.failures += 1
        self.failure_reasons[reason] = self.failure_reasons.get(reason, 0) + 1

    def cost_usd(self, price_input_per_mtok: float, price_output_per_mtok: float, batch_factor: float = 0.5) -> float:
        online = self.prompt_tokens * price_input_per_mtok + self.completion_tokens * price_output_per_mtok
        batch = self.batch_prompt_tokens * price_input_per_mtok + self.batch_completion_tokens * price_output_per_mtok
        return (online + batch * batch_factor) / 1e6

    def as_metadata(
        self, price_input_per_mtok: float, price_output_per_mtok: float, batch_factor: float = 0.5
    ) -> dict[str, Any]:
        data = {
            "requests_sent": self.requests_sent,
            "cache_hits": self.cache_hits,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "failures": self.failures,
            "prompt_tokens": self.prompt_tokens + self.batch_prompt_tokens,
            "completion_tokens": self.completion_tokens + self.batch_completion_tokens,
            "cost_usd": round(self.cost_usd(price_input_per_mtok, price_output_per_mtok, batch_factor), 6),
        }
        if self.batch_prompt_tokens or self.batch_completion_tokens:
            data["batch_prompt_tokens"] = self.batch_prompt_tokens
            data["batch_completion_tokens"] = self.batch_completion_tokens
        return data


class TeacherConfigError(RuntimeError):
    """A problem retrying cannot fix (bad key, unknown model, rejected request): stop at once."""


Progress = Callable[[int, int], None]
#: Called with (index into the requests, response) as each successful response arrives.
OnResponse = Callable[[int, "TeacherResponse"], None]


class Teacher(Protocol):
    endpoint: str
    model: str

    def complete(
        self,
        requests: Sequence[TeacherRequest],
        usage: Usage,
        progress: Progress | None = None,
        on_response: OnResponse | None = None,
    ) -> list[TeacherResponse | TeacherFailure]:
        """One result per request, in order; transport failures after retries come back as failures."""
        ...

    def close(self) -> None: ...
