"""The verdict: one paragraph in plain words from the comparison table and the win rates - what improved, by how
much, with which interval, what the length control and the ceiling say, and where an interval spans no change."""

from __future__ import annotations

import math

import pandas as pd

from research_tuner.lib.evaluation.metrics import metric


def _metric_sentence(row) -> str:
    title = metric(row.metric).title
    low, high = row.delta_ci_low, row.delta_ci_high
    change = f" ({row.improvement_pct:+.1f}%)" if not math.isnan(row.improvement_pct) else ""
    moved = f"{title} went from {row.base:.3f} to {row.fine_tuned:.3f}{change}"
    if math.isnan(low) or math.isnan(high):
        return f"{moved}, with too few questions for an interval"
    if low == high == 0:
        return f"{title} did not change ({row.base:.3f})"
    interval = f"95% CI of the paired change {low:+.3f} to {high:+.3f}"
    if low <= 0 <= high:
        return f"{moved}, but its {interval} spans no change"
    return f"{moved} ({interval}: {'an improvement' if low > 0 else 'a decline'})"


def _rate(value: float, low: float, high: float) -> str:
    if math.isnan(low):
        return f"{value:.2f}"
    return f"{value:.2f} (95% CI {low:.2f}-{high:.2f})"


def _versus_base(row, judge: str) -> list[str]:
    said = [f"{judge} preferred the fine-tuned answer to the base model's in {row.wins}, tied {row.ties} and "
            f"lost {row.losses} of {row.n} questions: a win rate of "
            f"{_rate(row.win_rate, row.win_rate_ci_low, row.win_rate_ci_high)} with ties as half"]
    if row.win_rate_ci_low > 0.5:
        said[-1] += ", a preference for the fine-tuned model"
    elif row.win_rate_ci_high < 0.5:
        said[-1] += ", a preference for the base model"
    else:
        said[-1] += "; the interval spans 0.5, so no preference either way is shown"
    lc = "At equal length the win rate would be " + _rate(row.lc_win_rate, row.lc_win_rate_ci_low,
                                                          row.lc_win_rate_ci_high)
    lengths = f"{row.words_fine_tuned:.0f} words against {row.words_opponent:.0f} on average"
    if row.win_rate_ci_low > 0.5 and not row.lc_win_rate_ci_low > 0.5:
        lc += f": the preference may be one for length ({lengths})"
    else:
        lc += f" ({lengths})"
    said.append(lc)
    said.append(f"the verdict changed with the order of the two answers in {100 * row.inconsistency_rate:.0f}% of "
                "the pairs (position bias; those count as ties)")
    return said


def _ceiling(row) -> str:
    rate = _rate(row.win_rate, row.win_rate_ci_low, row.win_rate_ci_high).replace(" (", ", ").rstrip(")")
    return (f"Against the teacher's own approach (the ceiling) the fine-tuned answer was preferred or tied in "
            f"{100 * row.preferred_or_tied:.0f}% of {row.n} questions (win rate {rate})")


def verdict_paragraph(comparison: pd.DataFrame, preferences: pd.DataFrame | None = None,
                      judge_model: str | None = None, judge_is_teacher: bool = False) -> str:
    """One paragraph from eval_report's comparison table and, where the pairwise judge ran, its win-rate table."""
    overall = comparison[comparison["field"] == "all"]
    questions = int(overall["n"].max()) if len(overall) else 0
    sentences = [f"Over {questions} validation questions, " + "; ".join(
        _metric_sentence(r) for r in overall.itertuples() if r.metric != "judge_score")]
    rows = {} if preferences is None or preferences.empty else {
        r.opponent: r for r in preferences[preferences["field"] == "all"].itertuples()}
    if not rows:
        sentences.append("No pairwise judge ran (evaluation.judge.pairwise is off), so the claim rests on overlap "
                         "with the teacher's text, which rewards imitating its wording and format rather than a "
                         "better plan")
    else:
        judge = f"The judge ({judge_model})" if judge_model else "The judge"
        if "base" in rows:
            sentences.extend(_versus_base(rows["base"], judge))
        if "reference" in rows:
            sentences.append(_ceiling(rows["reference"]))
        failed = sum(int(r.failed) for r in rows.values())
        if failed:
            sentences.append(f"{failed} pair(s) could not be judged and are left out")
        if judge_is_teacher:
            sentences.append("The judge is the teacher that wrote the references, which favours its own style "
                             "(self-preference): a judge of another family (evaluation.judge.base_url and model) "
                             "gives a fairer verdict")
    return ". ".join(s[0].upper() + s[1:] for s in sentences) + "."
