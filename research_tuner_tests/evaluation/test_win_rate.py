"""Win-rate statistics on synthetic data with a known truth: the Wilson interval covers the true rate (ties as
half included), the length-controlled rate recovers the rate at equal length, and the verdict paragraph says
what the numbers say, intervals that span no change included."""

import math

import numpy as np
import pandas as pd
import pytest

from research_tuner.lib.evaluation.conclusion import verdict_paragraph
from research_tuner.lib.evaluation.stats import wilson_interval
from research_tuner.lib.evaluation.win_rate import length_controlled_win_rate, preference_table


def test_wilson_interval_hand_computed_and_edges():
    low, high = wilson_interval(0.5, 100)  # z = 1.96: centre 0.5, half-width 1.96*sqrt(.25/100+.96/40000)/1.0384
    assert (low, high) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    assert wilson_interval(1.0, 10)[0] == pytest.approx(0.7225, abs=1e-4) and wilson_interval(1.0, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0.5, 0))
    with pytest.raises(ValueError):
        wilson_interval(1.5, 10)


@pytest.mark.parametrize("tie_share", [0.0, 0.4])
def test_wilson_interval_covers_the_true_win_rate(tie_share):
    """Outcomes 1 / 0.5 / 0 with a true mean of 0.65; 95% intervals over 400 draws of 60 questions."""
    rng = np.random.default_rng(0)
    p_win = 0.65 - tie_share / 2
    covered = 0
    for _ in range(400):
        scores = rng.choice([1.0, 0.5, 0.0], size=60, p=[p_win, tie_share, 1 - p_win - tie_share])
        low, high = wilson_interval(float(scores.mean()), len(scores))
        covered += low <= 0.65 <= high
    assert covered / 400 >= 0.93  # nominal 0.95; with ties the interval errs wide, never narrow


def test_length_controlled_rate_recovers_the_rate_at_equal_length():
    """The truth: p(win) = sigmoid(b0 + 1.5 * tanh(d / sd)), so the rate at equal length is sigmoid(b0)."""
    covered, errors = 0, []
    for seed in range(40):
        rng = np.random.default_rng(seed)
        diff = rng.normal(50, 60, 150)
        for b0 in (0.0, 0.8):
            p = 1 / (1 + np.exp(-(b0 + 1.5 * np.tanh(diff / diff.std()))))
            outcomes = (rng.random(150) < p).astype(float)
            lc, low, high = length_controlled_win_rate(outcomes, diff, seed=seed, n_resamples=400)
            truth = 1 / (1 + math.exp(-b0))
            covered += low <= truth <= high
            errors.append(lc - truth)
    assert covered / 80 >= 0.88
    assert abs(np.mean(errors)) < 0.03


def test_length_control_without_length_differences_is_the_raw_rate():
    outcomes = np.array([1.0, 1.0, 0.5, 0.0, 1.0, 0.5, 1.0, 0.0])
    lc, _, _ = length_controlled_win_rate(outcomes, np.zeros(8))
    assert lc == pytest.approx(outcomes.mean(), abs=0.01)


def preferences(outcomes: list[str], opponent: str = "base", field: str = "arts") -> pd.DataFrame:
    return pd.DataFrame([{"question_id": f"{field}{i}", "field": field, "opponent": opponent, "outcome": o,
                          "inconsistent": o == "tie" and i % 2 == 0, "words_fine_tuned": 300 + i,
                          "words_opponent": 280} for i, o in enumerate(outcomes)])


def test_the_table_counts_ties_as_half_and_leaves_failures_out():
    frame = pd.concat([preferences(["win"] * 6 + ["tie"] * 2 + ["loss"] * 2 + ["failed"]),
                       preferences(["loss"] * 4, field="humanities")])
    table = preference_table(frame).set_index(["field", "opponent"])
    arts = table.loc[("arts", "base")]
    assert (arts["n"], arts["wins"], arts["ties"], arts["losses"], arts["failed"]) == (10, 6, 2, 2, 1)
    assert arts["win_rate"] == pytest.approx(0.7) and arts["preferred_or_tied"] == pytest.approx(0.8)
    assert arts["inconsistency_rate"] == pytest.approx(0.1)  # the tie at index 6 (of 6, 7)
    assert table.loc[("all", "base"), "win_rate"] == pytest.approx(7 / 14)
    assert preference_table(frame.iloc[:0]).empty


def comparison(delta_low: float, delta_high: float) -> pd.DataFrame:
    return pd.DataFrame([{"field": "all", "metric": "meteor", "n": 40, "base": 0.2, "fine_tuned": 0.25,
                          "delta": 0.05, "delta_ci_low": delta_low, "delta_ci_high": delta_high,
                          "improvement_pct": 25.0}])


def test_the_verdict_says_when_an_interval_spans_no_change():
    text = verdict_paragraph(comparison(-0.01, 0.11))
    assert "METEOR went from 0.200 to 0.250 (+25.0%), but its 95% CI of the paired change -0.010 to +0.110 " \
           "spans no change" in text
    assert "No pairwise judge ran" in text


def test_the_verdict_reads_the_win_rates_the_length_control_and_the_ceiling():
    wins = preference_table(pd.concat([preferences(["win"] * 30 + ["tie"] * 6 + ["loss"] * 4),
                                       preferences(["loss"] * 30 + ["tie"] * 10, opponent="reference")]))
    text = verdict_paragraph(comparison(0.02, 0.08), wins, "judge-7b", judge_is_teacher=False)
    assert "METEOR went from 0.200 to 0.250 (+25.0%) (95% CI of the paired change +0.020 to +0.080: an " \
           "improvement)" in text
    assert "The judge (judge-7b) preferred the fine-tuned answer to the base model's in 30, tied 6 and lost 4 " \
           "of 40 questions: a win rate of 0.82 (95% CI" in text
    assert "a preference for the fine-tuned model" in text and "At equal length the win rate would be" in text
    assert "preferred or tied in 25% of 40 questions" in text
    assert "self-preference" not in text
    assert "self-preference" in verdict_paragraph(comparison(0.02, 0.08), wins, "gpt-4.1-mini", judge_is_teacher=True)
    even = preference_table(preferences(["win"] * 10 + ["loss"] * 10))
    assert "the interval spans 0.5, so no preference either way is shown" in verdict_paragraph(comparison(0, 1), even)
