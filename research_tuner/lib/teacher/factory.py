"""The teacher a setting names (registry.py), behind the SQLite response cache.

Backend modules are imported when a teacher is built, so choosing `local` never imports `openai` and the reverse.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from research_tuner.lib.teacher.cache import CachedTeacher, ResponseCache
from research_tuner.lib.teacher.registry import BACKENDS

if TYPE_CHECKING:
    from research_tuner.settings import TeacherSettings


def build_teacher(settings: TeacherSettings, cache_path: str | Path) -> CachedTeacher:
    """The backend `settings.backend` names, behind the SQLite response cache at `cache_path`."""
    backend = importlib.import_module(BACKENDS[settings.backend])
    cache = ResponseCache(cache_path)
    try:
        return CachedTeacher(backend.build(settings, cache), cache)
    except BaseException:
        cache.close()
        raise
