"""A profile: every section together, read from `research_tuner/profiles/<name>.yaml`, with a user's YAML file
and `section.key=value` overrides deep-merged over it, validated before anything runs."""

from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError, model_validator

from research_tuner.lib.shared.errors import SettingsError
from research_tuner.settings.base import Strict
from research_tuner.settings.data import DedupSettings, GenerationSettings, SplitSettings
from research_tuner.settings.evaluation import EvaluationSettings
from research_tuner.settings.gates import GateSettings
from research_tuner.settings.teacher import TeacherSettings
from research_tuner.settings.training import TrainingSettings

PROFILE_NAMES = ("demo", "paper")


class Profile(Strict):
    name: str
    teacher: TeacherSettings
    generation: GenerationSettings
    split: SplitSettings = SplitSettings()
    dedup: DedupSettings = DedupSettings()
    gates: GateSettings = GateSettings()
    training: TrainingSettings
    evaluation: EvaluationSettings = EvaluationSettings()

    @model_validator(mode="after")
    def _check(self) -> Profile:
        if self.teacher.backend == "openai" and self.teacher.model.startswith("embedded:"):
            raise ValueError("teacher.model: an embedded: model runs only with teacher.backend 'local'")
        judge = self.evaluation.judge.teacher_settings(self.teacher)
        if judge.backend == "openai" and judge.model.startswith("embedded:"):
            raise ValueError("evaluation.judge.model: an embedded: model runs only with the 'local' backend; set "
                             "evaluation.judge.model (and base_url) to the judge's server and model")
        return self


def _read_profile_yaml(name: str) -> dict[str, Any]:
    if name not in PROFILE_NAMES:
        raise SettingsError(f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    text = resources.files("research_tuner.profiles").joinpath(f"{name}.yaml").read_text()
    return yaml.safe_load(text)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`["training.epochs=1", "teacher.model=gpt-4.1"]` -> nested dict; values parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"override {item!r} is not of the form section.key=value")
        node = nested
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return nested


def load_profile(
    name: str = "demo",
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Profile:
    """The named profile, with a user YAML file and then explicit overrides merged over it."""
    data = _read_profile_yaml(name)
    if config_file:
        path = Path(config_file).expanduser()
        if not path.is_file():
            raise SettingsError(f"config file {str(path)!r} does not exist")
        user = yaml.safe_load(path.read_text()) or {}
        if not isinstance(user, dict):
            raise SettingsError(f"config file {str(path)!r} must hold a mapping of sections")
        data = _deep_merge(data, user)
    if overrides:
        data = _deep_merge(data, overrides)
    data["name"] = name
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise SettingsError(f"invalid settings for profile {name!r}: {problems}") from None
