"""The price of a step before it runs: requests, tokens, dollars and wall time from the requests it will send.

A step (one asset partition) is priced from the very requests it will send (`StepPlan`), so the prompt side is as
good as the token approximation (`approx_tokens`: about 4 characters per token, as OpenAI's tokenizers average on
English). The completion side is an assumption: how long an answer is expected to be (`expected_completion`); the
worst case is every answer reaching its `max_tokens`. Retries of rejected answers come on top.

Wall time: at the configured rate limits, the larger of requests / requests_per_minute and (prompt + max_tokens)
/ tokens_per_minute, as providers count; without limits, `max_concurrency` streams at `OUTPUT_TOKENS_PER_S`.
Batch mode: within the completion window, at `batch_price_factor` of the list price.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from research_tuner.lib.teacher.base import TeacherRequest

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings

#: An API model's decoding speed per request stream, for the wall time without configured rate limits.
OUTPUT_TOKENS_PER_S = 80.0
#: Time to first token of one request (network and queueing).
FIRST_TOKEN_S = 0.5


def approx_tokens(text: str) -> int:
    """About 4 characters per token, as OpenAI's tokenizers average on English text."""
    return math.ceil(len(text) / 4)


def request_prompt_tokens(request: TeacherRequest) -> int:
    """The prompt tokens of what goes on the wire: every message, with the assistant prefix instruction."""
    text = sum(len(m["content"]) for m in request.messages)
    if request.assistant_prefix:
        text += len("\n\nBegin your answer with: ") + len(request.assistant_prefix)
    return math.ceil(text / 4)


@dataclass(frozen=True)
class StepPlan:
    """One step's requests, and the completion tokens each is expected to use."""

    step: str  # e.g. 'approaches[arts]'
    requests: Sequence[TeacherRequest]
    expected_completion: Sequence[int]
    settings: TeacherSettings  # the client that sends them (prices, limits, mode, budget)


@dataclass(frozen=True)
class StepEstimate:
    step: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    worst_completion_tokens: int
    usd: float
    worst_usd: float
    wall_s: float
    budget_usd: float | None

    @property
    def over_budget(self) -> bool:
        return self.budget_usd is not None and self.usd > self.budget_usd


def wall_time_s(plan: StepPlan, prompt_tokens: int, completion_tokens: int) -> float:
    cfg = plan.settings
    n = len(plan.requests)
    if cfg.backend != "openai":
        return float("nan")  # an in-process model: its speed is the machine's, not a server's
    if cfg.mode == "batch":
        return 24 * 3600.0 if cfg.batch_completion_window == "24h" else float("nan")
    decode = (n * FIRST_TOKEN_S + completion_tokens / OUTPUT_TOKENS_PER_S) / cfg.max_concurrency
    limited = 0.0
    if cfg.requests_per_minute:
        limited = max(limited, 60.0 * n / cfg.requests_per_minute)
    if cfg.tokens_per_minute:
        charged = prompt_tokens + sum(r.max_tokens for r in plan.requests)
        limited = max(limited, 60.0 * charged / cfg.tokens_per_minute)
    return max(decode, limited)


def estimate_step(plan: StepPlan) -> StepEstimate:
    cfg = plan.settings
    prompt = sum(request_prompt_tokens(r) for r in plan.requests)
    completion = int(sum(plan.expected_completion))
    worst = sum(r.max_tokens for r in plan.requests)
    factor = cfg.batch_price_factor if cfg.mode == "batch" else 1.0
    price_in, price_out = cfg.price_input_per_mtok, cfg.price_output_per_mtok
    return StepEstimate(
        step=plan.step, requests=len(plan.requests), prompt_tokens=prompt, completion_tokens=completion,
        worst_completion_tokens=worst, usd=(prompt * price_in + completion * price_out) / 1e6 * factor,
        worst_usd=(prompt * price_in + worst * price_out) / 1e6 * factor,
        wall_s=wall_time_s(plan, prompt, completion), budget_usd=cfg.budget_usd,
    )
