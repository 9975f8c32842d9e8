"""Dagster resources: the pipeline settings (a profile, a YAML file, typed per-section keys, dotted assignments) and
the teacher built from them.

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
from research_tuner.launchpad import SECTION_NAMES, section_config, section_description
from research_tuner.settings import Profile, load_profile, parse_assignments
from research_tuner.settings.profile import deep_merge, without_nulls

TeacherConfig = section_config("teacher")
GenerationConfig = section_config("generation")
SplitConfig = section_config("split")
DedupConfig = section_config("dedup")
GatesConfig = section_config("gates")
TrainingConfig = section_config("training")
EvaluationConfig = section_config("evaluation")
TrackingConfig = section_config("tracking")
ReleaseConfig = section_config("release")


def _section_field(config: type, name: str):
    return Field(default_factory=config, description=section_description(name))


class PipelineSettings(dg.ConfigurableResource):
    """Which profile runs, and what is overridden: the one place a run's knobs are chosen.

    Applied in this order, each over the one before: the profile, `config_file`, the typed sections (a key left
    null keeps the value before it), then `set`."""

    profile: str = Field(default="demo", description="'demo' (offline, embedded model) or 'paper'.")
    config_file: str = Field(default="", description="Optional YAML file deep-merged over the profile.")
    teacher: TeacherConfig = _section_field(TeacherConfig, "teacher")
    generation: GenerationConfig = _section_field(GenerationConfig, "generation")
    split: SplitConfig = _section_field(SplitConfig, "split")
    dedup: DedupConfig = _section_field(DedupConfig, "dedup")
    gates: GatesConfig = _section_field(GatesConfig, "gates")
    training: TrainingConfig = _section_field(TrainingConfig, "training")
    evaluation: EvaluationConfig = _section_field(EvaluationConfig, "evaluation")
    tracking: TrackingConfig = _section_field(TrackingConfig, "tracking")
    release: ReleaseConfig = _section_field(ReleaseConfig, "release")
    set: list[str] = Field(
        default_factory=list,
        description="Dotted assignments applied last, as the CLI's --set takes them: [training.epochs=1, "
        "teacher.budget_usd=null]; for a null the typed keys cannot say.",
    )
    work_dir: str = Field(
        default="",
        description="Local scratch (teacher cache, training checkpoints). Default: $RESEARCH_TUNER_WORK, "
        "else <model cache>/work.",
    )

    def overrides(self) -> dict[str, Any]:
        """What this run sets over the profile and the file: the typed keys, then the assignments."""
        typed = without_nulls({name: getattr(self, name).model_dump(mode="json") for name in SECTION_NAMES})
        return deep_merge(typed, parse_assignments(list(self.set)))

    def resolve(self) -> Profile:
        return load_profile(self.profile, self.config_file or None, self.overrides())

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
