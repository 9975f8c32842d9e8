"""Teacher backends by name (`teacher.backend`), each built from the settings behind the response cache.

A backend is a module with `build(settings: TeacherSettings, cache: ResponseCache) -> Teacher` (see base.py for
what a Teacher does). Adding one is a module and a line in `BACKENDS`; the settings accept every name here.
Modules are imported when a teacher is built, so choosing `local` never imports `openai` and the reverse.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from research_tuner.lib.teacher.cache import CachedTeacher
    from research_tuner.settings import TeacherSettings

#: `teacher.backend` -> the module whose `build` makes that teacher.
BACKENDS: dict[str, str] = {
    "local": "research_tuner.lib.teacher.local",  # a Hugging Face model in this process
    "openai": "research_tuner.lib.teacher.openai_api",  # any OpenAI-compatible server (online or Batch API)
}


def build_teacher(settings: TeacherSettings, cache_path: str | Path) -> CachedTeacher:
    """The backend `settings.backend` names, behind the SQLite response cache at `cache_path`."""
    from research_tuner.lib.teacher.cache import CachedTeacher, ResponseCache

    backend = importlib.import_module(BACKENDS[settings.backend])
    cache = ResponseCache(cache_path)
    try:
        return CachedTeacher(backend.build(settings, cache), cache)
    except BaseException:
        cache.close()
        raise
