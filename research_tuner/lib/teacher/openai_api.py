"""The teacher behind any OpenAI-compatible chat-completions server: OpenAI, vLLM, Ollama, a test server.

Requests run concurrently (asyncio, bounded) under the client-side rate limiter (ratelimit.py), which
follows the configured requests/tokens per minute and the server's `x-ratelimit-*` headers, and under
the dollar budget (budget.py), which reserves each request's worst case before it is sent. Transient
faults (429, 5xx, timeouts, dropped connections, malformed bodies) are retried with exponential backoff
and jitter, honouring Retry-After; faults that retrying cannot fix (401, 403, 404, 400) raise
TeacherConfigError at once, before more money is spent. So does a server that no connection could ever be
made to (a closed port, an unknown host) once a request has used up its retries: a step retry minutes later
would not find it either, and the error names the URL. When the budget is reached nothing new is
sent, the requests in flight finish (and are stored by the caller), then BudgetExceeded is raised.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import openai

from research_tuner.lib.teacher.base import (
    OnResponse,
    Progress,
    TeacherConfigError,
    TeacherFailure,
    TeacherRequest,
    TeacherResponse,
    Usage,
)
from research_tuner.lib.teacher.budget import Budget, BudgetExceeded, estimate_prompt_tokens
from research_tuner.lib.teacher.credentials import api_key_for
from research_tuner.lib.teacher.endpoint import cannot_connect, display_url
from research_tuner.lib.teacher.ratelimit import RateLimiter, retry_after_s
from research_tuner.lib.teacher.wire import MalformedResponse, chat_body, response_from_completion

if TYPE_CHECKING:
    from research_tuner.lib.teacher.batch import BatchTeacher
    from research_tuner.lib.teacher.cache import ResponseCache
    from research_tuner.settings import TeacherSettings

_TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)
_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError, openai.BadRequestError)
#: 429s that say the limit is used up are waited out by the limiter; this only stops an endless loop.
MAX_RATE_LIMIT_WAITS = 50


def _headers(exc: Exception):
    response = getattr(exc, "response", None)
    return response.headers if response is not None else None


def run_interruptibly(coro):
    """asyncio.run, except that an interrupt raised inside an event-loop callback stops the loop and is
    re-raised. (A signal handler such as Dagster's, which raises a BaseException on SIGTERM, can fire
    while the loop runs a transport callback; asyncio would log that exception and carry on.)"""
    interrupts: list[BaseException] = []

    def keep_interrupts(loop, context) -> None:
        exc = context.get("exception")
        if exc is not None and not isinstance(exc, Exception):
            interrupts.append(exc)
            loop.stop()
            return
        loop.default_exception_handler(context)

    with asyncio.Runner() as runner:
        runner.get_loop().set_exception_handler(keep_interrupts)
        try:
            return runner.run(coro)
        except RuntimeError:
            if interrupts:
                raise interrupts[0] from None
            raise


class OpenAITeacher:
    def __init__(self, settings: TeacherSettings, *, budget: Budget | None = None):
        self.model = settings.model
        self.max_concurrency = settings.max_concurrency
        self.max_retries = settings.max_retries
        self.backoff_base_s = 0.5  # as the openai client: 0.5 s, 1 s, 2 s, ... with jitter
        self._client_args = {"api_key": api_key_for(settings), "base_url": settings.base_url,
                             "timeout": settings.request_timeout_s, "max_retries": 0}
        self.endpoint = str(openai.AsyncOpenAI(**self._client_args).base_url)
        self._schema_supported = True
        self._reached = False  # whether the server ever answered (anything): until then a refusal is fatal
        # Kept across calls, so what was learned about the server's limit carries over to the next round.
        self.limiter = RateLimiter(settings.requests_per_minute, settings.tokens_per_minute)
        self.budget = budget or Budget(None, 0.0, 0.0)

    def complete(
        self,
        requests: Sequence[TeacherRequest],
        usage: Usage,
        progress: Progress | None = None,
        on_response: OnResponse | None = None,
    ) -> list[TeacherResponse | TeacherFailure]:
        return run_interruptibly(self._complete_all(requests, usage, progress, on_response))

    async def _complete_all(self, requests, usage: Usage, progress, on_response):
        client = openai.AsyncOpenAI(**self._client_args)
        gate = asyncio.Semaphore(self.max_concurrency)
        done = 0
        abort = asyncio.Event()  # set by a fatal error or the budget: nothing more is sent after it
        budget_stop: list[BudgetExceeded] = []

        async def one(i: int, req: TeacherRequest):
            nonlocal done
            async with gate:
                if abort.is_set():
                    return TeacherFailure("aborted")
                try:
                    result = await self._with_retries(client, req, usage, abort)
                except BudgetExceeded as exc:
                    budget_stop.append(exc)
                    abort.set()
                    return TeacherFailure("budget")
                except TeacherConfigError:
                    abort.set()
                    raise
            if on_response and isinstance(result, TeacherResponse):
                on_response(i, result)
            done += 1
            if progress:
                progress(done, len(requests))
            return result

        try:
            tasks = [asyncio.create_task(one(i, r)) for i, r in enumerate(requests)]
            try:
                results = await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                raise
        finally:
            await client.close()
        if budget_stop:
            raise budget_stop[0]
        return results

    async def _with_retries(self, client, req: TeacherRequest, usage: Usage, abort: asyncio.Event):
        last = "unknown"
        attempt = limit_waits = 0
        tokens = estimate_prompt_tokens(req) + req.max_tokens
        while True:
            grant = await self.limiter.acquire(tokens)
            if abort.is_set():
                return TeacherFailure("aborted")
            reservation = self.budget.reserve(req)
            try:
                response, headers = await self._send(client, req)
            except _FATAL as exc:
                self.budget.release(reservation)
                if isinstance(exc, openai.BadRequestError) and self._schema_supported and req.json_schema:
                    if "response_format" in str(exc) or "json_schema" in str(exc):
                        self._schema_supported = False  # this server ignores structured output: fall back
                        continue
                raise TeacherConfigError(
                    f"the teacher server refused the request ({type(exc).__name__}, HTTP "
                    f"{getattr(exc, 'status_code', '?')}): {getattr(exc, 'message', exc)}. Check the API key "
                    f"variable, teacher.model ({self.model!r}) and teacher.base_url ({display_url(self.endpoint)})."
                ) from None
            except (*_TRANSIENT, MalformedResponse, ValueError) as exc:
                self.budget.release(reservation)
                now = time.monotonic()
                last = type(exc).__name__
                unreachable = cannot_connect(exc)
                self._reached = self._reached or (unreachable is None and not isinstance(exc, openai.APITimeoutError))
                delay = None
                if isinstance(exc, openai.RateLimitError):
                    usage.rate_limited += 1
                    delay = self.limiter.rate_limited(_headers(exc), now, tokens)
                    if self.limiter.paused_until > now or any(
                        g.remaining is not None and g.remaining <= 0 for g in self.limiter.gates.values()
                    ):
                        limit_waits += 1  # the limit is used up: the limiter holds this request back
                        usage.retries += 1
                        if limit_waits <= MAX_RATE_LIMIT_WAITS:
                            continue
                        break
                elif isinstance(exc, openai.APIStatusError):
                    self.limiter.observe(grant, _headers(exc), now)  # admitted, then failed: it counted
                    delay = retry_after_s(_headers(exc))
                if attempt == self.max_retries:
                    if unreachable and not self._reached:
                        raise TeacherConfigError(
                            f"cannot reach the teacher server at {display_url(self.endpoint)} ({unreachable}, "
                            f"{attempt + 1} attempt(s)): start it, or fix teacher.base_url (or OPENAI_BASE_URL)"
                        ) from None
                    break
                attempt += 1
                usage.retries += 1
                if delay is None:
                    delay = self.backoff_base_s * 2 ** (attempt - 1) * (0.5 + random.random())
                await asyncio.sleep(delay)
            else:
                self._reached = True
                self.budget.settle(reservation, response.prompt_tokens, response.completion_tokens)
                self.limiter.observe(grant, headers, time.monotonic())
                usage.record(response)
                return response
        usage.record_failure(last)
        return TeacherFailure(last)

    async def _send(self, client, req: TeacherRequest):
        body = chat_body(self.model, req, self._schema_supported)
        body.pop("model")
        raw = await client.chat.completions.with_raw_response.create(model=self.model, **body)
        try:
            completion = raw.parse()
        except Exception as exc:  # a 200 whose body is not JSON, or not a completion
            raise MalformedResponse(str(exc)[:200]) from None
        if isinstance(completion, str | bytes):
            raise MalformedResponse("the body is not a chat completion")
        return response_from_completion(req, completion), raw.headers

    def close(self) -> None:
        pass


def build(settings: TeacherSettings, cache: ResponseCache) -> OpenAITeacher | BatchTeacher:
    """The registry's factory (registry.py): the online client, or the Batch API with `teacher.mode: batch`."""
    budget = Budget(settings.budget_usd, settings.price_input_per_mtok, settings.price_output_per_mtok)
    if settings.mode == "batch":
        from research_tuner.lib.teacher.batch import BatchTeacher

        return BatchTeacher(settings, cache, budget=budget)
    return OpenAITeacher(settings, budget=budget)
