"""The teacher behind any OpenAI-compatible chat-completions server: OpenAI, vLLM, Ollama, a test server.

Requests run concurrently (asyncio, bounded); transient faults (429, 5xx, timeouts, dropped connections)
are retried with exponential backoff and jitter, honouring Retry-After; faults that retrying cannot fix
(401, 403, 404, 400) raise TeacherConfigError at once, before more money is spent.
"""

from __future__ import annotations

import asyncio
import random
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

_TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APITimeoutError, openai.APIConnectionError)
_FATAL = (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError, openai.BadRequestError)


def _retry_after_s(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _token_counts(completion) -> tuple[int, int]:
    usage = completion.usage
    return (usage.prompt_tokens, usage.completion_tokens) if usage else (0, 0)


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
        backoff_base_s: float = 1.0,
    ):
        self.model = model
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self._client_args = {"api_key": api_key, "base_url": base_url, "timeout": timeout_s, "max_retries": 0}
        self.endpoint = str(openai.AsyncOpenAI(**self._client_args).base_url)
        self._schema_supported = True

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

        abort = asyncio.Event()  # set by the first fatal error: nothing more is sent after it

        async def one(i: int, req: TeacherRequest):
            nonlocal done
            async with gate:
                if abort.is_set():
                    return TeacherFailure("aborted")
                try:
                    result = await self._with_retries(client, req, usage)
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
                return await asyncio.gather(*tasks)
            except BaseException:
                for t in tasks:
                    t.cancel()
                raise
        finally:
            await client.close()

    async def _with_retries(self, client, req: TeacherRequest, usage: Usage):
        last = "unknown"
        for attempt in range(self.max_retries + 1):
            try:
                response = await self._send(client, req)
                usage.record(response)
                return response
            except _FATAL as exc:
                if isinstance(exc, openai.BadRequestError) and self._schema_supported and req.json_schema:
                    if "response_format" in str(exc) or "json_schema" in str(exc):
                        self._schema_supported = False  # this server ignores structured output: fall back
                        continue
                raise TeacherConfigError(
                    f"the teacher server refused the request ({type(exc).__name__}, HTTP "
                    f"{getattr(exc, 'status_code', '?')}): {getattr(exc, 'message', exc)}. Check the API key "
                    f"variable, teacher.model ({self.model!r}) and teacher.base_url ({self.endpoint})."
                ) from None
            except _TRANSIENT as exc:
                last = type(exc).__name__
                if attempt == self.max_retries:
                    break
                usage.retries += 1
                delay = _retry_after_s(exc)
                if delay is None:
                    delay = self.backoff_base_s * 2**attempt * (0.5 + random.random())
                await asyncio.sleep(delay)
        usage.record_failure(last)
        return TeacherFailure(last)

    async def _send(self, client, req: TeacherRequest) -> TeacherResponse:
        messages = [dict(m) for m in req.messages]
        if req.assistant_prefix:
            messages[-1]["content"] += f"\n\nBegin your answer with: {req.assistant_prefix}"
        extra = {}
        if req.json_schema and self._schema_supported:
            extra["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": req.json_schema, "strict": True},
            }
        completion = await client.chat.completions.create(
            model=self.model,
            messages=messages,
            max_tokens=req.max_tokens,
            temperature=req.temperature,
            top_p=req.top_p,
            seed=req.seed,
            **extra,
        )
        choice = completion.choices[0]
        text = choice.message.content or ""
        if getattr(choice.message, "refusal", None):
            return TeacherResponse("", "refusal", *_token_counts(completion))
        if req.assistant_prefix and text.startswith(req.assistant_prefix):
            text = text[len(req.assistant_prefix) :]
        return TeacherResponse(text, choice.finish_reason or "stop", *_token_counts(completion))

    def close(self) -> None:
        pass
