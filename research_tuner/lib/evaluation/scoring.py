"""Scoring the evaluation answers: every registered metric (metrics.py) against the reference, and the judge's
grade when it ran. One row per answer, so the report can pair each question's two answers."""

from __future__ import annotations

import pandas as pd

from research_tuner.lib.evaluation import metrics
from research_tuner.lib.shared.schema import RowSchema

_ANSWER = {"question_id": "object", "field": "object", "subdomain": "object", "question": "object", "model": "object",
           "finish_reason": "object", "completion_tokens": "int64"}


def scores_schema() -> RowSchema:
    """The `eval_scores` table: one row per answer, a column per metric of the registry (read when called, so
    the registry is the one list of metrics), then the judge's grade and status (empty when it did not run)."""
    return RowSchema("eval_scores", {**_ANSWER, **{m.name: "float64" for m in metrics.METRICS},
                                     metrics.JUDGE_SCORE.name: "float64", "judge_status": "object"})


def score_answers(generations: pd.DataFrame, judgements: pd.DataFrame | None = None, **options: object) -> pd.DataFrame:
    """`generations` (eval_generations) scored: one column per metric, and the judge's grade and status
    ('ok', 'failed', or '' where the judge did not run). `options` are the settings metrics read (embedding_model)."""
    frame = generations.reset_index(drop=True).copy()
    answers, references = frame["response"].tolist(), frame["reference"].tolist()
    for metric in metrics.METRICS:
        frame[metric.name] = pd.Series(metric.compute(answers, references, **options), dtype="float64")
    if judgements is not None and len(judgements):
        graded = judgements[["question_id", "model", "status", metrics.JUDGE_SCORE.name]].rename(
            columns={"status": "judge_status"})
        frame = frame.merge(graded, on=["question_id", "model"], how="left", validate="one_to_one")
        frame["judge_status"] = frame["judge_status"].fillna("")
    else:
        frame[metrics.JUDGE_SCORE.name] = float("nan")
        frame["judge_status"] = ""
    return scores_schema().select(frame)


def judged(scores: pd.DataFrame) -> bool:
    """Whether any answer has a judge grade (the judge ran and at least one judgement succeeded)."""
    return bool((scores["judge_status"] == "ok").any())
