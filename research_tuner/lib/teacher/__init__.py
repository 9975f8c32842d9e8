"""Teacher backends (local model, OpenAI-compatible server) behind one interface and one cache."""

from __future__ import annotations

import os
from pathlib import Path

from research_tuner.lib.teacher.base import (
    Teacher,
    TeacherConfigError,
    TeacherFailure,
    TeacherRequest,
    TeacherResponse,
    Usage,
)
from research_tuner.lib.teacher.budget import Budget, BudgetExceeded
from research_tuner.lib.teacher.cache import CachedTeacher, ResponseCache
from research_tuner.settings import SettingsError, TeacherSettings

__all__ = [
    "Budget", "BudgetExceeded", "CachedTeacher", "ResponseCache", "Teacher", "TeacherConfigError", "TeacherFailure",
    "TeacherRequest", "TeacherResponse", "Usage", "api_key_for", "build_teacher",
]


def api_key_for(settings: TeacherSettings) -> str:
    """The API key from the environment variable the settings name; a clear error when it is missing.

    A self-hosted server (base_url set, here or in OPENAI_BASE_URL) usually needs no key, so a
    placeholder is sent; OpenAI itself does.
    """
    key = os.environ.get(settings.api_key_env, "").strip()
    if key:
        return key
    if settings.base_url or os.environ.get("OPENAI_BASE_URL"):
        return "not-needed"
    raise SettingsError(
        f"the teacher is {settings.model!r} on OpenAI, but the environment variable {settings.api_key_env} "
        "is not set. Export your API key in it (export OPENAI_API_KEY=sk-...), or point teacher.base_url "
        "at your own OpenAI-compatible server, or use the demo profile, which needs no key."
    )


def build_teacher(settings: TeacherSettings, cache_path: str | Path) -> CachedTeacher:
    if settings.backend == "local":
        from research_tuner.lib.teacher.local import LocalTeacher

        inner: Teacher = LocalTeacher(settings.model, batch_size=settings.max_concurrency,
                                      precision=settings.precision)
        return CachedTeacher(inner, ResponseCache(cache_path))
    budget = Budget(settings.budget_usd, settings.price_input_per_mtok, settings.price_output_per_mtok)
    cache = ResponseCache(cache_path)
    if settings.mode == "batch":
        from research_tuner.lib.teacher.batch import BatchTeacher

        inner = BatchTeacher(
            settings.model,
            cache,
            api_key=api_key_for(settings),
            base_url=settings.base_url,
            poll_interval_s=settings.batch_poll_interval_s,
            completion_window=settings.batch_completion_window,
            max_requests_per_batch=settings.batch_max_requests,
            price_factor=settings.batch_price_factor,
            budget=budget,
            timeout_s=settings.request_timeout_s,
        )
    else:
        from research_tuner.lib.teacher.openai_api import OpenAITeacher

        inner = OpenAITeacher(
            settings.model,
            api_key=api_key_for(settings),
            base_url=settings.base_url,
            max_concurrency=settings.max_concurrency,
            max_retries=settings.max_retries,
            timeout_s=settings.request_timeout_s,
            requests_per_minute=settings.requests_per_minute,
            tokens_per_minute=settings.tokens_per_minute,
            budget=budget,
        )
    return CachedTeacher(inner, cache)
