"""The teacher's API key, read from the environment variable the settings name, at the moment it connects."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from research_tuner.lib.shared.errors import SettingsError

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings


def api_key_for(settings: TeacherSettings, role: str = "teacher") -> str:
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
        f"the {role} is {settings.model!r} on OpenAI, but the environment variable {settings.api_key_env} "
        f"is not set. Export your API key in it (export {settings.api_key_env}=sk-...), or point {role}.base_url "
        "at your own OpenAI-compatible server, or use the demo profile, which needs no key."
    )
