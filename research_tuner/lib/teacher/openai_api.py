"""The teacher behind any OpenAI-compatible chat-completions server: OpenAI, vLLM, Ollama, a test server.

Requests run concurrently (asyncio, bounded) under the client-side rate limiter (ratelimit.py), which
follows the configured requests/tokens per minute and the server's `x-ratelimit-*` headers, and under
the dollar budget (budget.py), which reserves each request's worst case before it is sent. Transient
faults (429, 5xx, timeouts, dropped connections, malformed bodies) are retried with exponential backoff
and jitter, honouring Retry-After; faults that retrying cannot fix (401, 403, 404, 400) raise
TeacherConfigError at once, before more money is spent. When the budget is reached nothing new is
sent, the requests in flight finish (and are stored by the caller), then BudgetExceeded is raised.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence

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
from research_tuner.lib.teacher.ratelimit import RateLimiter, retry_after_s

_TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)
_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError, openai.BadRequestError)
#: 429s that say the limit is used up are waited out by the limiter; this only stops an endless loop.
MAX_RATE_LIMIT_WAITS = 50


class MalformedResponse(Exception):
    """The server answered 200 with a body that is not a chat completion."""


def _headers(exc: Exception):
    response = getattr(exc, "response", None)
    return response.headers if response is not None else None


def _token_counts(completion) -> tuple[int, int]:
    usage = completion.usage
    return (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)


def chat_body(model: str, req: TeacherRequest, structured_output: bool = True) -> dict:
    """The chat-completions request body (also one line of a Batch API input file)."""
    messages = [dict(m) for m in req.messages]
    if req.assistant_prefix:
        messages[-1]["content"] += f"\n\nBegin your answer with: {req.assistant_prefix}"
    body = {"model": model, "messages": messages, "max_tokens": req.max_tokens, "temperature": req.temperature,
            "top_p": req.top_p, "seed": req.seed}
    if req.json_schema and structured_output:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "response", "schema": req.json_schema, "strict": True},
        }
    return body


def response_from_completion(req: TeacherRequest, completion) -> TeacherResponse:
    """A TeacherResponse from a parsed chat completion (an object or, from a batch file, a dict)."""
    if isinstance(completion, dict):
        completion = openai.types.chat.ChatCompletion.model_validate(completion)
    if not getattr(completion, "choices", None):
        raise MalformedResponse("no choices in the response")
    choice = completion.choices[0]
    text = choice.message.content or ""
    if getattr(choice.message, "refusal", None):
        return TeacherResponse("", "refusal", *_token_counts(completion))
    if req.assistant_prefix and text.startswith(req.assistant_prefix):
        text = text[len(req.assistant_prefix) :]
    return TeacherResponse(text, choice.finish_reason or "stop", *_token_counts(completion))


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
    def __init__(
        self,
        model: str,
        *,
        api_key: str,
        base_url: str | None = None,
        max_concurrency: int = 8,
        max_retries: int = 4,
        timeout_s: float = 120.0,
        backoff_base_s: float = 0.5,  # as the openai client: 0.5 s, 1 s, 2 s, ... with jitter
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
        budget: Budget | None = None,
    ):
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self._client_args = {"api_key": api_key, "base_url": base_url, "timeout": timeout_s, "max_retries": 0}
        self.endpoint = str(openai.AsyncOpenAI(**self._client_args).base_url)
        self._schema_supported = True
        # Kept across calls, so what was learned about the server's limit carries over to the next round.
        self.limiter = RateLimiter(requests_per_minute, tokens_per_minute)
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
                    f"variable, teacher.model ({self.model!r}) and teacher.base_url ({self.endpoint})."
                ) from None
            except (*_TRANSIENT, MalformedResponse, ValueError) as exc:
                self.budget.release(reservation)
                now = time.monotonic()
                last = type(exc).__name__
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
                    break
                attempt += 1
                usage.retries += 1
                if delay is None:
                    delay = self.backoff_base_s * 2 ** (attempt - 1) * (0.5 + random.random())
                await asyncio.sleep(delay)
            else:
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
