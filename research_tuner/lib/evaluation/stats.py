"""Comparing two systems scored on the same examples: paired bootstrap interval and relative change."""

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
