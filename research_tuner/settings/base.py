"""What every settings section shares: frozen pydantic models that reject unknown keys, and registry checks."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def registered(name: str, registry: Mapping, what: str) -> str:
    """`name` if the registry has it, else a ValueError listing the names it has."""
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(registry)}")
    return name
