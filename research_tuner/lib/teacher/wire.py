"""The chat-completions wire format: the request body of a TeacherRequest (also one line of a Batch API input
file) and the TeacherResponse of a completion. Shared by the online client and the Batch API."""

from __future__ import annotations

import openai

from research_tuner.lib.teacher.base import OVERSIZE, TeacherRequest, TeacherResponse


class MalformedResponse(Exception):
    """The server answered 200 with a body that is not a chat completion."""


#: No tokenizer writes more characters per token on average than this (English averages about 4; a run of
#: spaces or one long word can be one token), so a longer text cannot have fit in `max_tokens`.
MAX_CHARS_PER_TOKEN = 12


def oversize(req: TeacherRequest, text: str, completion_tokens: int) -> bool:
    """Whether an answer is longer than `req.max_tokens` allows: by the server's own count, or by its length."""
    return completion_tokens > req.max_tokens or len(text) > req.max_tokens * MAX_CHARS_PER_TOKEN + 200


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
    prompt_tokens, completion_tokens = _token_counts(completion)
    if oversize(req, text, completion_tokens):
        # A server that ignores max_tokens (or lies about it) is not trusted with the rest either: the text never
        # reaches a table or the cache, and every consumer sees the finish reason as a failure with its reason.
        return TeacherResponse("", OVERSIZE, prompt_tokens, completion_tokens)
    return TeacherResponse(text, choice.finish_reason or "stop", prompt_tokens, completion_tokens)
