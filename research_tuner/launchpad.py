"""The settings sections as typed Dagster config, so the launchpad lists every key a run can set.

Each section of `research_tuner.settings.Profile` (teacher, generation, ..., release) becomes a Dagster `Config`
class built from the section's pydantic model: one field per setting, its description followed by the two
profiles' defaults, its type as Dagster can show it (a choice list for a `Literal`, `Any` for "a count or
'auto'"). Every field defaults to null, which means "the profile's value": the profile is chosen at run time,
so no single default is right for both, and a key left null is no override at all. Validation stays in the
settings classes: what the launchpad takes is merged over the profile and checked there, with the same
messages as the CLI's.
"""

from __future__ import annotations

import enum
import json
import types
import typing
from typing import Any, Literal, Optional

import dagster as dg
from pydantic import Field, create_model
from pydantic.fields import FieldInfo

from research_tuner.settings import Profile, load_profile
from research_tuner.settings.base import Strict

#: The sections, in the order the launchpad shows them.
SECTION_NAMES = tuple(name for name in Profile.model_fields if name != "name")

_DEFAULTS = {profile: load_profile(profile) for profile in ("demo", "paper")}


def _unwrap(annotation: Any) -> Any:
    """`Annotated[str, ...]` -> `str`, recursively inside lists and unions."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


def _members(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return [_unwrap(a) for a in typing.get_args(annotation)]
    return [_unwrap(annotation)]


def _camel(dotted: str) -> str:
    return "".join(part.capitalize() for part in dotted.replace(".", "_").split("_"))


def _config_type(annotation: Any, dotted: str) -> Any:
    """The Dagster-showable type of one setting: scalars and lists as they are, a `Literal` as an Enum (the
    launchpad offers its values), a union of different kinds (`bool | 'auto'`) as Any."""
    members = [m for m in _members(annotation) if m is not type(None)]
    if len(members) != 1:
        return Any
    (kind,) = members
    if typing.get_origin(kind) is Literal:
        values = typing.get_args(kind)
        return enum.Enum(_camel(dotted), {str(v): v for v in values}, type=str)  # names unique per key
    if typing.get_origin(kind) is list:
        return list[_unwrap(typing.get_args(kind)[0])]
    return kind


def _shown(value: Any) -> str:
    """A default as a person would type it in the launchpad's YAML: `false`, `null`, `"cosine"`, `["q_proj"]`."""
    return json.dumps(value)


def _description(info: FieldInfo, defaults: dict[str, Any]) -> str:
    demo, paper = defaults["demo"], defaults["paper"]
    default = f"default {_shown(demo)}" if demo == paper else f"demo {_shown(demo)}, paper {_shown(paper)}"
    text = (info.description or "").strip()
    return f"{text} ({default}; null: the profile's value)" if text else f"{default}; null: the profile's value"


def _section(model: type[Strict], dotted: str, defaults: dict[str, Any]) -> type[dg.Config]:
    fields: dict[str, Any] = {}
    for key, info in model.model_fields.items():
        values = {profile: getattr(value, key) for profile, value in defaults.items()}
        if isinstance(info.annotation, type) and issubclass(info.annotation, Strict):
            inner = _section(info.annotation, f"{dotted}.{key}", values)
            fields[key] = (inner, Field(default_factory=inner, description=(info.annotation.__doc__ or "").strip()))
        else:
            kind = _config_type(info.annotation, f"{dotted}.{key}")
            fields[key] = (kind if kind is Any else Optional[kind],
                           Field(default=None, description=_description(info, values)))
    return create_model(f"{_camel(dotted)}Config", __base__=dg.Config, __doc__=model.__doc__, **fields)


def section_config(name: str) -> type[dg.Config]:
    """The typed Dagster config class of one settings section."""
    model = Profile.model_fields[name].annotation
    return _section(model, name, {profile: getattr(p, name) for profile, p in _DEFAULTS.items()})


def section_description(name: str) -> str:
    doc = (Profile.model_fields[name].annotation.__doc__ or "").strip().rstrip(".")
    return f"The {name} section{': ' + doc if doc else ''}. A key left null keeps the profile's value."
