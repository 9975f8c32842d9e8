"""Dagster resources: the pipeline settings (profile + overrides) and the teacher built from them.

Secrets never pass through here: the teacher reads its API key from the environment variable that the
settings name, at the moment it connects, so keys stay out of run config, metadata and logs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from research_tuner.lib.shared.models import cache_dir
from research_tuner.lib.teacher.cache import CachedTeacher
from research_tuner.lib.teacher.factory import build_teacher
from research_tuner.settings import Profile, load_profile


class PipelineSettings(dg.ConfigurableResource):
    """Which profile runs, and what is overridden: the one place a run's knobs are chosen."""

    profile: str = Field(default="demo", description="'demo' (offline, embedded model) or 'paper'.")
    config_file: str = Field(default="", description="Optional YAML file deep-merged over the profile.")
    overrides: dict[str, Any] = Field(
        default_factory=dict, description="Nested overrides, e.g. {training: {epochs: 1}}; applied last."
    )
    work_dir: str = Field(
        default="",
        description="Local scratch (teacher cache, training checkpoints). Default: $RESEARCH_TUNER_WORK, "
        "else <model cache>/work.",
    )

    def resolve(self) -> Profile:
        return load_profile(self.profile, self.config_file or None, self.overrides)

    def work_path(self, *parts: str) -> Path:
        root = Path(self.work_dir or os.environ.get("RESEARCH_TUNER_WORK") or cache_dir() / "work")
        path = root.joinpath(*parts)
        path.mkdir(parents=True, exist_ok=True)
        return path


class TeacherResource(dg.ConfigurableResource):
    """Builds the teacher the profile asks for, behind the SQLite response cache."""

    cache_path: str = Field(default="", description="SQLite response cache. Default: <work_dir>/teacher_cache.sqlite")
    _teacher: CachedTeacher | None = PrivateAttr(default=None)
    _judge: CachedTeacher | None = PrivateAttr(default=None)

    def get(self, settings: PipelineSettings) -> CachedTeacher:
        """The teacher for these settings; built once per run (a local model loads once)."""
        if self._teacher is None:
            path = self.cache_path or str(settings.work_path() / "teacher_cache.sqlite")
            self._teacher = build_teacher(settings.resolve().teacher, path)
        return self._teacher

    def get_judge(self, settings: PipelineSettings) -> CachedTeacher:
        """The LLM judge: its own client through the backend registry, from evaluation.judge's endpoint fields
        (each unset one is the teacher's), with its own budget at its own prices, behind the same cache (a
        cache key holds the endpoint and model, so a judge's answers never pass for the teacher's)."""
        if self._judge is None:
            profile = settings.resolve()
            path = self.cache_path or str(settings.work_path() / "teacher_cache.sqlite")
            self._judge = build_teacher(profile.evaluation.judge.teacher_settings(profile.teacher), path)
        return self._judge

    def teardown_after_execution(self, context) -> None:
        for teacher in (self._teacher, self._judge):
            if teacher is not None:
                teacher.close()
        self._teacher = self._judge = None


def default_settings() -> PipelineSettings:
    """Settings from the environment, so `dagster dev` and the CLI pick the same profile by default."""
    return PipelineSettings(
        profile=os.environ.get("RESEARCH_TUNER_PROFILE", "demo"),
        config_file=os.environ.get("RESEARCH_TUNER_CONFIG", ""),
    )
