"""The per-field table: for each field and model, the number of answers, each metric's mean, and the share of
answers cut at the token limit; with the judge, its mean grade over the answers it graded and its failures."""

from __future__ import annotations

import pandas as pd

from research_tuner.lib.evaluation.metrics import JUDGE_SCORE, metric_names
from research_tuner.lib.evaluation.scoring import judged


def summarise(scores: pd.DataFrame) -> pd.DataFrame:
    """One row per (field, model) of `scores` (eval_scores rows)."""
    grouped = scores.groupby(["field", "model"], sort=True)
    table = grouped.agg(
        n=("question_id", "size"),
        **{name: (name, "mean") for name in metric_names()},
        hit_token_limit=("finish_reason", lambda s: float((s == "length").mean())),
    ).reset_index()
    if judged(scores):
        graded = grouped.agg(
            **{JUDGE_SCORE.name: (JUDGE_SCORE.name, "mean")},  # failed judgements (nan) are skipped by the mean
            judge_n=("judge_status", lambda s: int((s == "ok").sum())),
            judge_failed=("judge_status", lambda s: int((s == "failed").sum())),
        ).reset_index()
        table = table.merge(graded, on=["field", "model"], how="left")
    return table
