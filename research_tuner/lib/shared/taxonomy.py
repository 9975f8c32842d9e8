"""The research taxonomy (fields and their subdomains), read from the package's data file."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import pandas as pd
import yaml

from research_tuner.lib.shared.schema import RowSchema

#: The `subdomains` table: the subdomains of one field the run asks questions about.
SUBDOMAINS = RowSchema("subdomains", {"field": "object", "field_title": "object", "subdomain": "object"})


@dataclass(frozen=True)
class Field:
    key: str
    title: str
    subdomains: tuple[str, ...]


@cache
def load_taxonomy() -> tuple[Field, ...]:
    """All fields in file order; validated so that a bad edit fails loudly, not halfway through a run."""
    text = resources.files("research_tuner.data").joinpath("taxonomy.yaml").read_text()
    raw = yaml.safe_load(text)["fields"]
    fields = []
    for key, body in raw.items():
        subdomains = tuple(str(s).strip() for s in body["subdomains"])
        if not subdomains or any(not s for s in subdomains):
            raise ValueError(f"taxonomy.yaml: field {key!r} needs a non-empty list of subdomains")
        if len(set(subdomains)) != len(subdomains):
            raise ValueError(f"taxonomy.yaml: field {key!r} lists a subdomain twice")
        fields.append(Field(key=key, title=str(body.get("title", key)), subdomains=subdomains))
    return tuple(fields)


def field_keys() -> list[str]:
    return [f.key for f in load_taxonomy()]


def get_field(key: str) -> Field:
    for f in load_taxonomy():
        if f.key == key:
            return f
    raise KeyError(f"unknown research field {key!r}; known: {', '.join(field_keys())}")


def subdomain_rows(key: str, limit: int | None = None) -> pd.DataFrame:
    """The field's subdomains as `SUBDOMAINS` rows: all of them, or the first `limit`."""
    field = get_field(key)
    return SUBDOMAINS.frame({"field": field.key, "field_title": field.title, "subdomain": s}
                            for s in field.subdomains[:limit])
