"""Structured output: a pydantic model as the JSON schema a request asks the server to follow.

Pydantic writes a `title` for the model and every field; they say nothing to the server and are left out, so
the schema (which is part of every request's cache key) is only what constrains the answer.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


def _without_titles(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _without_titles(v) for k, v in node.items() if not (k == "title" and isinstance(v, str))}
    if isinstance(node, list):
        return [_without_titles(v) for v in node]
    return node


def response_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema for a strict `response_format` (every field required, no extra keys)."""
    schema = _without_titles(model.model_json_schema())
    if schema.get("additionalProperties") is not False:
        raise ValueError(f"{model.__name__} must forbid extra keys (model_config extra='forbid') for strict output")
    return schema
