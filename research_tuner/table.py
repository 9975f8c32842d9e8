"""The evaluation table `research-tuner run` and `research-tuner table` print: scores per field, the paired
deltas over all fields with their intervals, the pairwise win rates and the verdict, read from the lake."""

from __future__ import annotations

from typing import TYPE_CHECKING

from research_tuner.settings import SettingsError

if TYPE_CHECKING:
    import pandas as pd


def evaluation_table(lake: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    from research_tuner.lake import lake_path, read_parquet  # Dagster loads with it: not for a mistyped command

    folder = lake_path(lake, "eval_report")
    if not (folder / "scores_by_field.parquet").exists():
        raise SettingsError(f"no evaluation report in {folder}: run the pipeline first (research-tuner run "
                            f"--lake {lake}), or name the lake that has one with --lake")
    return read_parquet(folder / "scores_by_field.parquet"), read_parquet(folder / "comparison.parquet")


def print_table(lake: str) -> None:
    from research_tuner.lake import lake_path
    from research_tuner.lib.evaluation.metrics import metric_names

    scores, comparison = evaluation_table(lake)
    columns = ["field", "model", "n", *metric_names(), "hit_token_limit"]
    shown = scores[columns + [c for c in ("judge_score", "judge_n", "judge_failed") if c in scores.columns]]
    print("Evaluation per field (mean scores against the teacher's approach):")
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    if "judge_score" in scores.columns:
        print("(judge_score: the LLM judge's mean grade, 0-5, over judge_n answers; judge_failed were unreadable)")
    overall = comparison[comparison["field"] == "all"]
    print("\nOver all fields: fine_tuned vs base (paired delta, 95% bootstrap CI, relative change):")
    for row in overall.itertuples():
        print(f"  {row.metric:<21} base {row.base:.4f}  fine_tuned {row.fine_tuned:.4f}  "
              f"delta {row.delta:+.4f} [{row.delta_ci_low:+.4f}, {row.delta_ci_high:+.4f}]  "
              f"{row.improvement_pct:+.1f}%")
    _print_preferences(lake)
    print(f"\nData lake: {lake_path(lake)}  (figures in {lake_path(lake, 'eval_report')})")


def _print_preferences(lake: str) -> None:
    """The pairwise win rates over all fields and the verdict paragraph, where the report has them."""
    from research_tuner.lake import lake_path, read_parquet

    folder = lake_path(lake, "eval_report")
    if (folder / "win_rates.parquet").exists():
        wins = read_parquet(folder / "win_rates.parquet")
        for row in wins[wins["field"] == "all"].itertuples():
            print(f"  win rate vs {row.opponent:<9} {row.win_rate:.4f} [{row.win_rate_ci_low:.3f}, "
                  f"{row.win_rate_ci_high:.3f}]  (W/T/L {row.wins}/{row.ties}/{row.losses}, ties as half; "
                  f"at equal length {row.lc_win_rate:.3f}; order flipped the verdict in "
                  f"{100 * row.inconsistency_rate:.0f}%)")
    if (folder / "verdict.md").exists():
        print("\nVerdict: " + (folder / "verdict.md").read_text().strip())
