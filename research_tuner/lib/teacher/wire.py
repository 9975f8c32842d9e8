"""The chat-completions wire format: the request body of a TeacherRequest (also one line of a Batch API input
file) and the TeacherResponse of a completion. Shared by the online client and the Batch API."""

from __future__ import annotations

import openai

from research_tuner.lib.teacher.base import TeacherRequest, TeacherResponse


class MalformedResponse(Exception):
    """The server answered 200 with a body that is not a chat completion."""


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
