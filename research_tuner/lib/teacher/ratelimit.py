"""Client-side rate limiting: configured requests/tokens per minute, adapted to the server's headers.

Two layers decide when a request may go:

- The configured limits (`requests_per_minute`, `tokens_per_minute`) pace requests evenly (a token
  bucket with no burst; a large request leaves a debt the next ones wait out): no window of any
  length sees more than its share, plus one request.
- What the server reports in `x-ratelimit-limit-*`, `x-ratelimit-remaining-*` and
  `x-ratelimit-reset-*` (OpenAI's names; reset as '20ms', '1s', '6m0s') is a window gate: units left
  until the server's window resets. A response tells how much was left when the server answered it;
  the client subtracts what it granted after that request, so it knows what is left now although
  answers arrive late and out of order. When the window resets it starts full again at the limit the
  server last reported, so a limit the server lowers mid-run is followed from the next window on
  (the current window is capped at once by the lower `remaining`). A 429 closes the gate until the
  reset (or Retry-After) it names.

The gate assumes a window that refills at once at the reset (a fixed window); against a server whose
limit refills gradually (a token bucket, as OpenAI's does) it is cautious only when `remaining`
reaches 0, and the configured rate keeps the client below it before that.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_duration(text: str | None) -> float | None:
    """Seconds in OpenAI's reset format ('20ms', '1s', '1.5s', '6m0s', '1h2m3s') or a bare number."""
    if text is None:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def retry_after_s(headers: Mapping[str, str] | None) -> float | None:
    """The wait a response asks for: `retry-after-ms`, else `retry-after` in seconds."""
    if not headers:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is not None:
            try:
                seconds = float(value) / divisor
            except ValueError:
                continue
            if math.isfinite(seconds) and seconds >= 0:
                return seconds
    return None


@dataclass(frozen=True)
class LimitReport:
    """One resource's line in a response's headers."""

    limit: float
    remaining: float
    reset_s: float


def limit_reports(headers: Mapping[str, str] | None) -> dict[str, LimitReport]:
    """{'requests': ..., 'tokens': ...} for what the headers report in full."""
    found: dict[str, LimitReport] = {}
    if not headers:
        return found
    for resource in ("requests", "tokens"):
        try:
            limit = float(headers[f"x-ratelimit-limit-{resource}"])
            remaining = float(headers[f"x-ratelimit-remaining-{resource}"])
        except (KeyError, TypeError, ValueError):
            continue
        reset = parse_duration(headers.get(f"x-ratelimit-reset-{resource}"))
        if reset is not None:
            found[resource] = LimitReport(limit, remaining, reset)
    return found


class TokenBucket:
    """A configured rate: `rate` units per second, at most `capacity` saved up."""

    def __init__(self, rate_per_s: float, capacity: float):
        self.rate, self.capacity = rate_per_s, capacity
        self.level, self._last = capacity, time.monotonic()

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self._last) * self.rate)
        self._last = now

    def wait_s(self, units: float, now: float) -> float:
        self._refill(now)
        need = min(units, self.capacity)  # a request bigger than the bucket goes when it is full (then owes)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, units: float) -> None:
        self.level -= units


class WindowGate:
    """What the server says is left of one resource until its window resets, net of later grants.

    A report's reset is taken as counted from when its request was sent: servers count a request (and
    compute its headers) when it arrives, not when the answer is ready, and an answer may take seconds.
    The window's length is learned from the distance between successive resets; until it is known, the
    gate opens at a reset and waits for a report from the new window before it closes again.
    """

    MARGIN_S = 0.003  # wait this much past the reset the server named, for clock and rounding slack
    #: Once the window's length is known, grants are spread over this share of it instead of going out
    #: in one burst at the reset: the same throughput, but answers arrive evenly, so few are ever
    #: received-but-not-yet-stored (what a kill loses), and the server sees no spikes.
    SPREAD = 0.9

    def __init__(self) -> None:
        self.limit: float | None = None
        self.remaining: float | None = None  # None: nothing known yet, do not hold back
        self.reset_at: float | None = None  # None: a new window began and its end is not known yet
        self.period: float | None = None  # the window's length, once two resets were seen
        self.longest_reset = 0.0
        self.granted = 0.0  # units granted since the start
        self._last_reset: float | None = None
        self._next_at = 0.0  # the spread: the earliest time of the next grant
        self._probe_at = 0.0  # with the window's end unknown, when one request may go to find it out

    def _roll(self, now: float) -> None:
        if self.reset_at is None or now < self.reset_at + self.MARGIN_S:
            return
        self.remaining = self.limit
        self._last_reset = self.reset_at
        if self.period:
            self.reset_at += (math.floor((now - self.reset_at) / self.period) + 1) * self.period
        else:
            self.reset_at = None
            self._probe_at = now + max(self.longest_reset, 0.05)

    def wait_s(self, units: float, now: float) -> float:
        self._roll(now)
        if self.remaining is None or self.remaining >= units:
            return max(0.0, self._next_at - now)
        if self.limit is not None and units > self.limit and self.remaining >= self.limit:
            return 0.0  # bigger than a whole window: send it into a fresh one
        if self.reset_at is None:
            # The window's end is not known yet; a report from a request in flight will tell. If none
            # comes (every request was refused), one request goes at the earliest the window can end.
            return min(0.02, max(0.0, self._probe_at - now))  # look again soon: a report may come first
        return max(0.0, self.reset_at + self.MARGIN_S - now)

    def take(self, units: float) -> float:
        """Grant `units`; returns the running total, which later identifies this grant's report."""
        if self.remaining is not None:
            if self.reset_at is None and self.remaining < units:  # a probe (see wait_s)
                self._probe_at = time.monotonic() + max(self.longest_reset, 0.05)
            self.remaining -= units
        if self.period and self.limit:
            now = time.monotonic()
            self._next_at = max(now, min(self._next_at, now + self.period)) + units * self.SPREAD * self.period / self.limit
        self.granted += units
        return self.granted

    def observe(self, report: LimitReport, granted_at: float, sent_at: float, now: float) -> None:
        """A report from the answer to the request sent at `sent_at`, whose grant made the total `granted_at`."""
        reset_at = sent_at + report.reset_s
        if reset_at + self.MARGIN_S <= now:
            return  # the window it describes is over
        self.longest_reset = max(self.longest_reset, report.reset_s)
        tolerance = max(0.005, 0.2 * (self.period or self.longest_reset))
        left_now = report.remaining - (self.granted - granted_at)  # later grants land in this window or after
        known = self.reset_at if self.reset_at is not None else self._last_reset
        if self.reset_at is None or reset_at > self.reset_at + tolerance:  # a window newer than we knew
            if known is not None and reset_at - known > tolerance:
                step = reset_at - known
                self.period = step if self.period is None else min(self.period, step)
            self.limit, self.reset_at, self.remaining = report.limit, reset_at, left_now
        elif reset_at >= self.reset_at - tolerance:  # the window we are in
            self.limit = report.limit
            self.remaining = left_now if self.remaining is None else min(self.remaining, left_now)
            self.reset_at = max(self.reset_at, reset_at)

    def close_until(self, report: LimitReport | None, until: float) -> None:
        """A 429: nothing more until `until`; then full again at the limit reported."""
        if report is not None:
            self.limit = report.limit
        self.remaining = 0.0
        self.reset_at = until


@dataclass(frozen=True)
class Grant:
    sent_at: float
    granted: dict[str, float]  # the gates' running totals after this grant


class RateLimiter:
    """Decides when each request may be sent; see the module docstring."""

    def __init__(self, requests_per_minute: float | None = None, tokens_per_minute: float | None = None):
        self.buckets: dict[str, TokenBucket] = {}
        # No saved-up burst: requests go out evenly, so no window of any length sees more than its share.
        if requests_per_minute:
            self.buckets["requests"] = TokenBucket(requests_per_minute / 60, 1.0)
        if tokens_per_minute:
            self.buckets["tokens"] = TokenBucket(tokens_per_minute / 60, 1.0)
        self.gates = {"requests": WindowGate(), "tokens": WindowGate()}
        self.paused_until = 0.0
        self.waited_s = 0.0  # total time requests spent waiting here

    def wait_s(self, tokens: float, now: float) -> float:
        units = {"requests": 1.0, "tokens": float(tokens)}
        waits = [self.paused_until - now]
        waits += [self.buckets[r].wait_s(units[r], now) for r in self.buckets]
        waits += [self.gates[r].wait_s(units[r], now) for r in self.gates]
        return max(0.0, *waits)

    async def acquire(self, tokens: float) -> Grant:
        """Wait until one request of about `tokens` tokens (prompt + max_tokens) may go."""
        start = time.monotonic()
        while True:
            now = time.monotonic()
            wait = self.wait_s(tokens, now)
            if wait <= 0:
                break
            await asyncio.sleep(min(wait, 0.5))
        for resource, bucket in self.buckets.items():
            bucket.take(1.0 if resource == "requests" else tokens)
        granted = {"requests": self.gates["requests"].take(1.0), "tokens": self.gates["tokens"].take(tokens)}
        self.waited_s += now - start
        return Grant(now, granted)

    def observe(self, grant: Grant, headers: Mapping[str, str] | None, received: float) -> None:
        """Learn from a successful (or at least admitted) response's headers."""
        for resource, report in limit_reports(headers).items():
            self.gates[resource].observe(report, grant.granted[resource], grant.sent_at, received)

    def rate_limited(self, headers: Mapping[str, str] | None, received: float, tokens: float = 0.0) -> float:
        """Learn from a 429; returns how long this request should wait before it is tried again.

        A 429 that says a limit is used up (less left than this request needs, or no limit headers at
        all) holds every request back until the reset; a 429 with room left (an overloaded server)
        only delays this one.
        """
        reports = limit_reports(headers)
        wait = retry_after_s(headers)
        needs = {"requests": 1.0, "tokens": float(tokens)}
        exhausted = [r for r, rep in reports.items() if rep.remaining <= 0 or rep.remaining < needs[r]]
        if reports and not exhausted:
            return wait if wait is not None else 0.0
        for resource in exhausted or []:
            rep = reports[resource]
            self.gates[resource].close_until(rep, received + max(rep.reset_s, wait or 0.0))
        if not exhausted:  # a bare 429: pause everything for what it asks
            self.paused_until = max(self.paused_until, received + (wait if wait is not None else 1.0))
        return 0.0  # the gate now holds the request until the window resets
