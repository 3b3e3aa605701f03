"""Interval estimates for reported numbers: 95% percentile-bootstrap intervals of a mean."""

from __future__ import annotations

import numpy as np

BOOTSTRAP = 10_000  # resamples


def bootstrap_ci(x, seed: int = 0, resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of `x` [n] (resampling its n entries: seeds,
    episodes); deterministic given `seed`."""
    x = np.asarray(x, float)
    idx = np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))
    lo, hi = np.percentile(x[idx].mean(axis=1), [2.5, 97.5])
    return float(lo), float(hi)
