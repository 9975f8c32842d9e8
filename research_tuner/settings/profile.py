"""A profile: every section together, read from `research_tuner/profiles/<name>.yaml`, with a user's YAML file
and `section.key=value` overrides deep-merged over it, validated before anything runs."""

from __future__ import annotations

import copy
import json
import re
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
from research_tuner.settings.release import ReleaseSettings, TrackingSettings
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
    tracking: TrackingSettings = TrackingSettings()
    release: ReleaseSettings = ReleaseSettings()

    @model_validator(mode="after")
    def _check(self) -> Profile:
        if self.teacher.backend == "openai" and self.teacher.model.startswith("embedded:"):
            raise ValueError("teacher.model: an embedded: model runs only with teacher.backend 'local'")
        judge = self.evaluation.judge.teacher_settings(self.teacher)
        if judge.backend == "openai" and judge.model.startswith("embedded:"):
            raise ValueError("evaluation.judge.model: an embedded: model runs only with the 'local' backend; set "
                             "evaluation.judge.model (and base_url) to the judge's server and model")
        return self


class _Loader(yaml.SafeLoader):
    """safe_load, except that `2e-4` and `1e3` are floats (YAML 1.2), not strings: the settings are strict."""


_Loader.yaml_implicit_resolvers = {first: list(rs) for first, rs in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?([0-9][0-9_]*)(\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789"))


def _yaml(text: str):
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: why the YAML breaks and where (the construct it was in, where that began)."""

    def at(mark) -> str:
        return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""

    context, problem = getattr(exc, "context", None), getattr(exc, "problem", None)
    text = f"{problem}{at(getattr(exc, 'problem_mark', None))}" if problem else str(exc)
    if context:
        text = f"{context}{at(getattr(exc, 'context_mark', None))}: {text}"
    return " ".join(text.split())


def _read_profile_yaml(name: str) -> dict[str, Any]:
    if name not in PROFILE_NAMES:
        raise SettingsError(f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    text = resources.files("research_tuner.profiles").joinpath(f"{name}.yaml").read_text()
    return _yaml(text)


def _read_config_file(config_file: str | Path) -> dict[str, Any]:
    """The user's YAML file as a mapping; a SettingsError naming the file and what is wrong with it."""
    path = Path(config_file).expanduser()
    shown = repr(str(path))
    if not path.exists():
        raise SettingsError(f"config file {shown} does not exist")
    if not path.is_file():
        raise SettingsError(f"config file {shown} is not a file")
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SettingsError(f"config file {shown} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset "
                            f"{exc.start}): save it as UTF-8") from None
    except OSError as exc:
        raise SettingsError(f"config file {shown} cannot be read: {exc.strerror or exc}") from None
    try:
        user = _yaml(text) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"config file {shown} is not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(user, dict):
        raise SettingsError(f"config file {shown} must hold a mapping of sections (teacher:, training:, ...), "
                            f"not a {type(user).__name__}")
    return user


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`, mapping by mapping; neither is changed."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """`["training.epochs=1", "teacher.model=gpt-4.1"]` -> nested dict; values parsed as YAML scalars."""
    nested: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(p.strip() for p in parts):
            raise SettingsError(f"override {item!r} is not of the form section.key=value")
        try:
            value = _yaml(raw)
        except yaml.YAMLError as exc:
            raise SettingsError(
                f"override {item!r}: the value {raw!r} is not valid YAML ({_yaml_problem(exc)}); quote a text "
                f"that starts with [, {{, & or *: --set \"{key.strip()}='{raw}'\"") from None
        node = nested
        *parents, leaf = (p.strip() for p in parts)
        for depth, part in enumerate(parents):
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise SettingsError(f"override {item!r} conflicts with an earlier one that set "
                                    f"{'.'.join(parents[:depth + 1])} to a value")
        if isinstance(node.get(leaf), dict):
            raise SettingsError(f"override {item!r} conflicts with an earlier one that set keys under {key.strip()}")
        node[leaf] = value
    return nested


def without_nulls(config: Any) -> Any:
    """A nested mapping without its null keys and the sections left empty: what was actually set (a launchpad
    section, a scaffolded run config)."""
    if isinstance(config, dict):
        pruned = {key: without_nulls(value) for key, value in config.items()}
        return {key: value for key, value in pruned.items() if value is not None and value != {}}
    return config


def format_assignments(nested: dict[str, Any], prefix: str = "") -> list[str]:
    """What parse_assignments reads back as `nested`: `{"training": {"epochs": 1}}` -> `["training.epochs=1"]`
    (each value as JSON, which is YAML too)."""
    out: list[str] = []
    for key, value in nested.items():
        if isinstance(value, dict) and value:
            out += format_assignments(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}={json.dumps(value)}")
    return out


def load_profile(
    name: str = "demo",
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> Profile:
    """The named profile, with a user YAML file and then explicit overrides merged over it."""
    data = _read_profile_yaml(name)
    if config_file:
        data = deep_merge(data, _read_config_file(config_file))
    if overrides:
        data = deep_merge(data, overrides)
    data["name"] = name
    try:
        return Profile.model_validate(data)
    except ValidationError as exc:
        raise SettingsError(f"invalid settings for profile {name!r}: {describe(exc)}") from None


def describe(exc: ValidationError) -> str:
    """One line per key at fault, joined: `training.epochs: Input should be a finite number (got inf)`.

    A union's alternatives (`processes`: a count or 'auto') are one message; the value is shown unless the key
    names a secret's variable, where a pasted key would be echoed."""
    by_key: dict[str, list[str]] = {}
    got: dict[str, Any] = {}
    for err in exc.errors():
        key = _settings_key(err["loc"])
        message = err["msg"].removeprefix("Value error, ")
        if message not in by_key.setdefault(key, []):
            by_key[key].append(message)
        if err["type"] not in ("extra_forbidden", "missing", "value_error") and not isinstance(
                err.get("input"), dict | list):
            got[key] = err.get("input")
    lines = []
    for key, messages in by_key.items():
        prefix = "Input should be "
        text = (prefix + " or ".join(m.removeprefix(prefix) for m in messages)
                if len(messages) > 1 and all(m.startswith(prefix) for m in messages) else "; ".join(messages))
        if key in got and not key.endswith("_env"):
            shown = repr(got[key])
            text += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        lines.append(text if not key or text.startswith(key + ".") else f"{key}: {text}")
    return "; ".join(" ".join(line.split()) for line in lines)


def _settings_key(loc: tuple) -> str:
    """The dotted settings key of an error location, without pydantic's union-member parts."""
    model: Any = Profile
    parts: list[str] = []
    for part in loc:
        fields = getattr(model, "model_fields", None)
        if isinstance(part, int) and parts:
            parts[-1] += f"[{part}]"  # an item of a list setting
            continue
        if fields is None:
            break  # past the setting: a union member's or a type's part
        parts.append(str(part))
        if part not in fields:
            break  # an unknown key
        annotation = fields[part].annotation
        model = annotation if isinstance(annotation, type) and issubclass(annotation, Strict) else None
    return ".".join(parts)
