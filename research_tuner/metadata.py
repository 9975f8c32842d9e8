"""Helpers that turn tables, usage and plots into Dagster metadata a person reads at a glance."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd

from research_tuner.lib.teacher.base import Usage
from research_tuner.settings import TeacherSettings


def preview(frame: pd.DataFrame, columns: list[str] | None = None, rows: int = 8, width: int = 160) -> dg.MetadataValue:
    """The first rows as a Markdown table, long texts shortened."""
    shown = frame[columns] if columns else frame
    shown = shown.head(rows).copy()
    for col in shown.columns:
        if shown[col].dtype == object:
            shown[col] = shown[col].astype(str).str.replace("\n", " ").str.slice(0, width)
    return dg.MetadataValue.md(shown.to_markdown(index=False) if len(shown) else "_(no rows)_")


def counts_by(frame: pd.DataFrame, column: str) -> dg.MetadataValue:
    return dg.MetadataValue.json({str(k): int(v) for k, v in frame[column].value_counts().sort_index().items()})


def usage_metadata(usage: Usage, teacher: TeacherSettings, prefix: str = "teacher") -> dict[str, Any]:
    """Requests, tokens and dollars at `teacher`'s prices (a judge's own settings for a judge, under 'judge/')."""
    data = usage.as_metadata(teacher.price_input_per_mtok, teacher.price_output_per_mtok, teacher.batch_price_factor)
    meta: dict[str, Any] = {f"{prefix}/{k}": v for k, v in data.items()}
    meta[f"{prefix}/cost_usd"] = dg.MetadataValue.float(float(data["cost_usd"]))
    meta[f"{prefix}/model"] = teacher.model
    if usage.failure_reasons:
        meta[f"{prefix}/failure_reasons"] = dg.MetadataValue.json(usage.failure_reasons)
    return meta


def image(png: Path) -> dg.MetadataValue:
    """A PNG inlined as Markdown, so the Dagster UI shows the plot itself."""
    encoded = base64.b64encode(Path(png).read_bytes()).decode()
    return dg.MetadataValue.md(f"![plot](data:image/png;base64,{encoded})")


class ProgressLogger:
    """Logs 'done/total' to the run log about every tenth of the work, so long steps show progress."""

    def __init__(self, context, what: str):
        self.context, self.what, self._next = context, what, 0.0

    def __call__(self, done: int, total: int) -> None:
        if total and (done / total >= self._next or done == total):
            self.context.log.info(f"{self.what}: {done}/{total}")
            self._next = done / total + 0.1
