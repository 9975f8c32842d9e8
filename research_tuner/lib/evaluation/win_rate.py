"""Win rates from the pairwise preferences: wins, ties and losses of the fine-tuned answer per field and opponent,
the win rate with ties as half and its 95% Wilson interval, the share of verdicts that flipped with the order,
each side's mean length, and the length-controlled win rate.

The length-controlled win rate follows AlpacaEval 2.0: regress the preference (1 win, 0.5 tie, 0 loss) on the
length difference with a logistic model, p = sigmoid(b0 + b1 * tanh(d / sd(d))) where d is the fine-tuned
answer's words minus the opponent's, and report sigmoid(b0): the win rate the model predicts at equal length.
A judge that only rewards length then reads about 0.5 however much longer the fine-tuned answers are. Its 95%
interval is a percentile bootstrap over questions (the model is refitted on each resample; it has no closed
form). Failed pairs count in neither.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from research_tuner.lib.evaluation.judge.pairwise import OPPONENTS, OUTCOME_SCORE
from research_tuner.lib.evaluation.stats import bootstrap_counts, percentile_interval, wilson_interval
from research_tuner.lib.shared.schema import RowSchema

#: The win-rate table (eval_report's win_rates.parquet): one row per field ('all' too) and opponent.
WIN_RATES = RowSchema("win_rates", {
    "field": "object", "opponent": "object", "n": "int64", "wins": "int64", "ties": "int64", "losses": "int64",
    "failed": "int64", "win_rate": "float64", "win_rate_ci_low": "float64", "win_rate_ci_high": "float64",
    "preferred_or_tied": "float64", "inconsistency_rate": "float64", "words_fine_tuned": "float64",
    "words_opponent": "float64", "lc_win_rate": "float64", "lc_win_rate_ci_low": "float64",
    "lc_win_rate_ci_high": "float64",
})
_RIDGE = 1e-2  # a weak prior on both coefficients: finite estimates when outcomes separate perfectly by length
_BOOTSTRAP = 2000


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -40, 40)))


def _fit(x: np.ndarray, y: np.ndarray, weights: np.ndarray, iterations: int = 100) -> np.ndarray:
    """(k, 2) coefficients (b0, b1) of k weighted logistic fits of y on x at once (Newton's method; y may be 0.5)."""
    coef = np.zeros((weights.shape[0], 2))
    for _ in range(iterations):
        p = _sigmoid(coef[:, :1] + coef[:, 1:] * x)
        r = weights * (p - y)
        g0, g1 = r.sum(1) + _RIDGE * coef[:, 0], (r * x).sum(1) + _RIDGE * coef[:, 1]
        w = weights * p * (1 - p)
        h00, h01, h11 = w.sum(1) + _RIDGE, (w * x).sum(1), (w * x * x).sum(1) + _RIDGE
        det = h00 * h11 - h01 * h01
        step = np.stack([(h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det], axis=1)
        coef -= step
        if np.abs(step).max() < 1e-9:
            break
    return coef


def length_feature(diff: np.ndarray) -> np.ndarray:
    """tanh(d / sd(d)): the length difference on a bounded scale (all zeros when every difference is the same)."""
    diff = np.asarray(diff, dtype=float)
    spread = diff.std() if diff.size else 0.0
    return np.tanh(diff / spread) if spread > 0 else np.zeros_like(diff)


def length_controlled_win_rate(scores, word_diff, seed: int = 0,
                               n_resamples: int = _BOOTSTRAP) -> tuple[float, float, float]:
    """(rate at equal length, 95% low, high) from per-question scores (1 / 0.5 / 0) and length differences."""
    y = np.asarray(scores, dtype=float)
    if y.size == 0:
        return math.nan, math.nan, math.nan
    x = length_feature(np.asarray(word_diff, dtype=float))
    point = float(_sigmoid(_fit(x, y, np.ones((1, y.size)))[0, 0]))
    if y.size < 2:
        return point, math.nan, math.nan
    replicates = _sigmoid(_fit(x, y, bootstrap_counts(y.size, n_resamples, seed))[:, 0])
    return (point, *percentile_interval(replicates))


def _summary(group: pd.DataFrame, seed: int) -> dict:
    judged = group[group["outcome"] != "failed"]
    counts = judged["outcome"].value_counts()
    n = len(judged)
    score = judged["outcome"].map(OUTCOME_SCORE).to_numpy(dtype=float)
    rate = float(score.mean()) if n else math.nan
    low, high = wilson_interval(rate, n)
    diff = (judged["words_fine_tuned"] - judged["words_opponent"]).to_numpy(dtype=float)
    lc, lc_low, lc_high = length_controlled_win_rate(score, diff, seed=seed)
    return {
        "n": n, "wins": int(counts.get("win", 0)), "ties": int(counts.get("tie", 0)),
        "losses": int(counts.get("loss", 0)), "failed": int(len(group) - n),
        "win_rate": rate, "win_rate_ci_low": low, "win_rate_ci_high": high,
        "preferred_or_tied": float((score >= 0.5).mean()) if n else math.nan,
        "inconsistency_rate": float(judged["inconsistent"].mean()) if n else math.nan,
        "words_fine_tuned": float(judged["words_fine_tuned"].mean()) if n else math.nan,
        "words_opponent": float(judged["words_opponent"].mean()) if n else math.nan,
        "lc_win_rate": lc, "lc_win_rate_ci_low": lc_low, "lc_win_rate_ci_high": lc_high,
    }


def preference_table(preferences: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Per field and over all fields ('all'), per opponent: the counts, rates and intervals described above."""
    rows = []
    groups = [(f, g) for f, g in preferences.groupby("field", sort=True)] + [("all", preferences)]
    for field, group in groups:
        for opponent in OPPONENTS:
            chosen = group[group["opponent"] == opponent]
            if len(chosen):
                rows.append({"field": field, "opponent": opponent, **_summary(chosen, seed)})
    return WIN_RATES.frame(rows) if rows else WIN_RATES.empty()
