"""Row schemas: the columns (and pandas dtypes) of an asset's table, declared once beside the function that
builds the table, and read by everything else that needs them (the assets, the lake's checks, the tests)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd


@dataclass(frozen=True)
class RowSchema:
    """An ordered mapping column -> pandas dtype ("object" for text)."""

    name: str
    dtypes: Mapping[str, str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return list(self.dtypes)

    def frame(self, rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
        """The rows as a table with exactly these columns, in this order (missing keys become NaN)."""
        return pd.DataFrame(list(rows), columns=self.columns)

    def empty(self) -> pd.DataFrame:
        """A table with these columns and dtypes and no rows."""
        return pd.DataFrame({c: pd.Series(dtype=t) for c, t in self.dtypes.items()})

    def select(self, frame: pd.DataFrame) -> pd.DataFrame:
        """`frame`'s columns of this schema, in order; a KeyError names those it lacks."""
        missing = self.missing(frame)
        if missing:
            raise KeyError(f"{self.name}: the table lacks the column(s) {', '.join(missing)}")
        return frame[self.columns]

    def missing(self, frame: pd.DataFrame) -> list[str]:
        return [c for c in self.columns if c not in frame.columns]

    def extend(self, name: str, more: Mapping[str, str]) -> RowSchema:
        """This schema's columns followed by `more`, under another name."""
        return RowSchema(name, {**self.dtypes, **more})

    def without(self, name: str, columns: Iterable[str]) -> RowSchema:
        dropped = set(columns)
        return RowSchema(name, {c: t for c, t in self.dtypes.items() if c not in dropped})
