"""What every settings section shares: frozen pydantic models that reject unknown keys and nonsense values,
the value types several sections use, and registry checks.

The models are strict: YAML's `true` is no count (`lora_r: true` is a mistake, not rank 1), a quoted "16" is
no number, and `.inf` / `.nan` are no float. Numbers are read from YAML 1.2-style text by the profile
loader, so `2e-4` is a float there, as a person means it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def registered(name: str, registry: Mapping, what: str) -> str:
    """`name` if the registry has it, else a ValueError listing the names it has."""
    if name not in registry:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(registry)}")
    return name


def _env_var_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError("must be the name of an environment variable (letters, digits and _, e.g. "
                         "OPENAI_API_KEY), not its value")
    return name


def _http_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host, e.g. http://127.0.0.1:8000/v1")
    return url


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be empty")
    return text


#: A name that must say something: a model, a path, a module.
Name = Annotated[str, AfterValidator(_not_blank)]
#: The name of an environment variable that holds a secret; the secret itself never goes in the settings.
EnvVarName = Annotated[str, AfterValidator(_env_var_name)]
#: An OpenAI-compatible server's base URL.
HttpUrl = Annotated[str, AfterValidator(_http_url)]
#: A random seed: NumPy and Python's `random` take 0 .. 2**32 - 1.
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
