"""Interval maths: the paired bootstrap of a mean difference, the Wilson interval of a rate, bootstrap weights over
items and percentile intervals, and the relative change."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

_MAX_CELLS = 4_000_000  # resample indices held in memory at once (32 MB of int64)


def paired_bootstrap_ci(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    n_resamples: int = 10_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """Mean of b - a over paired samples and its percentile-bootstrap interval (mean_delta, low, high).

    Each resample draws n pairs with replacement, keeping a[i] and b[i] together. n = 0 gives all
    nan; n = 1 gives the single difference with a nan interval (one pair says nothing about spread).
    """
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a and b must be 1-D and the same length, got shapes {a.shape} and {b.shape}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    n = a.size
    if n == 0:
        return math.nan, math.nan, math.nan
    delta = b - a
    mean_delta = float(delta.mean())
    if n < 2:
        return mean_delta, math.nan, math.nan
    rng = np.random.default_rng(seed)
    chunk = max(1, _MAX_CELLS // n)
    means = np.concatenate([
        delta[rng.integers(0, n, size=(min(chunk, n_resamples - start), n))].mean(axis=1)
        for start in range(0, n_resamples, chunk)
    ])
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return mean_delta, float(low), float(high)


def relative_improvement(base_mean: float, tuned_mean: float) -> float:
    """Change from base to tuned in percent of |base|; nan when base is 0 (or either is nan)."""
    if base_mean == 0 or math.isnan(base_mean) or math.isnan(tuned_mean):
        return math.nan
    return 100.0 * (tuned_mean - base_mean) / abs(base_mean)


def wilson_interval(mean: float, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a rate: `mean` of n scores in [0, 1] (a win rate with ties as half).

    For 0/1 outcomes it is the usual Wilson interval. With ties scored 0.5 it stays valid and errs wide:
    a score in [0, 1] with mean p has variance at most p(1 - p), the binomial variance Wilson assumes. It
    keeps its width at a rate of 0 or 1 and for a few dozen questions, where a percentile bootstrap collapses
    to a point. n = 0 gives nan.
    """
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie in (0, 1), got {confidence}")
    if n <= 0 or math.isnan(mean):
        return math.nan, math.nan
    if not 0.0 <= mean <= 1.0:
        raise ValueError(f"a rate must lie in [0, 1], got {mean}")
    z = _normal_quantile(0.5 + confidence / 2)
    denom = 1 + z * z / n
    centre = (mean + z * z / (2 * n)) / denom
    half = z / denom * math.sqrt(mean * (1 - mean) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _normal_quantile(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


def bootstrap_counts(n: int, n_resamples: int, seed: int = 0) -> np.ndarray:
    """(n_resamples, n) counts: how often each of n items is drawn in each resample with replacement (a
    bootstrap over items, e.g. over questions, as weights for a statistic that refits per resample)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(float)


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The central `confidence` share of bootstrap replicates (nan-free); nan when there are none."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)
