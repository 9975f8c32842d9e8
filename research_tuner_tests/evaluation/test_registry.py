"""The metric registry is read everywhere a metric appears: a metric added to it is scored, summarised, compared,
plotted and printed without touching any other file."""

from __future__ import annotations

import pandas as pd
import pytest

from research_tuner.lib.evaluation import metrics
from research_tuner.lib.evaluation.report import comparison_table, grouped_bars, reported_metrics
from research_tuner.lib.evaluation.scoring import score_answers, scores_schema
from research_tuner.lib.evaluation.summary import summarise


def answers() -> pd.DataFrame:
    rows = []
    for i, (base, tuned) in enumerate([("a b", "a b c d"), ("a", "a b c"), ("b c", "a b c d e")]):
        for model, response in (("base", base), ("fine_tuned", tuned)):
            rows.append({"question_id": f"q{i}", "field": "arts", "subdomain": "music", "question": f"Q{i}?",
                         "reference": "a b c d", "model": model, "response": response, "finish_reason": "stop",
                         "completion_tokens": len(response.split())})
    return pd.DataFrame(rows)


@pytest.fixture
def word_count(monkeypatch):
    """A new metric, registered the one way a newcomer would: an entry in METRICS."""
    metric = metrics.Metric("word_count", "Words", "words in the answer",
                            lambda answers, references: [float(len(a.split())) for a in answers], "figure9_words.png")
    monkeypatch.setattr(metrics, "METRICS", (*metrics.METRICS, metric))
    return metric


def test_a_registered_metric_flows_through_scoring_summary_comparison_and_figures(word_count, tmp_path):
    scores = score_answers(answers())
    assert scores.set_index(["question_id", "model"]).loc[("q2", "fine_tuned"), "word_count"] == 5.0
    assert "word_count" in summarise(scores).columns
    comparison = comparison_table(scores)
    row = comparison[(comparison["field"] == "all") & (comparison["metric"] == "word_count")].iloc[0]
    assert row["delta"] == pytest.approx((2 + 2 + 3) / 3)
    assert word_count in reported_metrics(scores)
    assert grouped_bars(scores, "word_count", tmp_path / word_count.figure).stat().st_size > 1000


def test_the_cli_table_prints_every_registered_metric(word_count, tmp_path, capsys):
    from research_tuner import cli

    scores = score_answers(answers())
    report = tmp_path / "eval_report"
    report.mkdir()
    summarise(scores).to_parquet(report / "scores_by_field.parquet")
    comparison_table(scores).to_parquet(report / "comparison.parquet")
    cli.print_table(str(tmp_path))
    out = capsys.readouterr().out
    assert "word_count" in out.splitlines()[1] and "word_count" in out.split("Over all fields")[1]


def test_the_scores_table_has_a_column_per_metric_and_the_judge():
    schema = scores_schema()
    assert schema.columns[-len(metrics.METRICS) - 2:] == [*metrics.metric_names(), "judge_score", "judge_status"]
    scores = score_answers(answers())
    assert list(scores.columns) == schema.columns and scores["judge_status"].eq("").all()
