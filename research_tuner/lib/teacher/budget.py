"""A cap on dollars: each request reserves its worst case before it is sent, so the cap is never passed."""

from __future__ import annotations

import math
import threading

from research_tuner.lib.teacher.base import TeacherConfigError, TeacherRequest


class BudgetExceeded(TeacherConfigError):
    """Sending the next request could pass the budget cap; what was answered is in the cache."""


def estimate_prompt_tokens(request: TeacherRequest) -> int:
    """An upper-leaning estimate without a tokenizer: about 4 characters per token, plus framing."""
    chars = sum(len(m["content"]) for m in request.messages) + len(request.assistant_prefix) + 40
    if request.json_schema:
        chars += len(str(request.json_schema))
    return math.ceil(chars / 4) + 4 * len(request.messages)


def worst_case_usd(request: TeacherRequest, price_input_per_mtok: float, price_output_per_mtok: float) -> float:
    return (estimate_prompt_tokens(request) * price_input_per_mtok + request.max_tokens * price_output_per_mtok) / 1e6


class Budget:
    """Dollars spent and reserved against `cap_usd` (None: no cap) for one teacher's run."""

    def __init__(self, cap_usd: float | None, price_input_per_mtok: float, price_output_per_mtok: float):
        self.cap_usd = cap_usd
        self.price_in, self.price_out = price_input_per_mtok, price_output_per_mtok
        self.spent_usd = 0.0
        self.reserved_usd = 0.0
        self.refused = 0
        self._lock = threading.Lock()

    def reserve(self, request: TeacherRequest, price_factor: float = 1.0) -> float:
        """Reserve the request's worst case, or raise BudgetExceeded without sending anything."""
        worst = worst_case_usd(request, self.price_in, self.price_out) * price_factor
        with self._lock:
            if self.cap_usd is not None and self.spent_usd + self.reserved_usd + worst > self.cap_usd:
                self.refused += 1
                raise self.exceeded(worst)
            self.reserved_usd += worst
        return worst

    def settle(self, reservation: float, prompt_tokens: int, completion_tokens: int, price_factor: float = 1.0) -> None:
        """The request was answered: swap its reservation for what it cost."""
        cost = (prompt_tokens * self.price_in + completion_tokens * self.price_out) / 1e6 * price_factor
        with self._lock:
            self.reserved_usd -= reservation
            self.spent_usd += cost

    def release(self, reservation: float) -> None:
        """The request was not answered (not billed): free its reservation."""
        with self._lock:
            self.reserved_usd -= reservation

    def exceeded(self, next_worst_usd: float) -> BudgetExceeded:
        return BudgetExceeded(
            f"teacher budget reached: ${self.spent_usd:.4f} spent (and ${self.reserved_usd:.4f} in flight) of the "
            f"${self.cap_usd:.2f} cap, and the next request could cost up to ${next_worst_usd:.4f}. Nothing more "
            "was sent. Every answer received is in the response cache, so a rerun sends only what is missing: "
            "raise the cap (e.g. --set teacher.budget_usd=<dollars>, or budget_usd: in your config file) and run "
            "the partition again."
        )
