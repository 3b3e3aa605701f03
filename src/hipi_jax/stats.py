"""Interval estimates for reported numbers: 95% percentile-bootstrap intervals of a mean, Wilson
intervals of a success rate, and the interquartile mean (IQM) with its bootstrap interval (SciPy)."""

from __future__ import annotations

from functools import partial

import numpy as np
import scipy.stats

BOOTSTRAP = 10_000  # resamples


def bootstrap_ci(x, seed: int = 0, resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean of `x` [n] (resampling its n entries: seeds,
    episodes); deterministic given `seed`. Resamples in blocks, so memory stays O(n · 1000)."""
    x = np.asarray(x, float)
    rng = np.random.default_rng(seed)
    means = np.concatenate(
        [x[rng.integers(0, len(x), (min(1000, resamples - i), len(x)))].mean(axis=1) for i in range(0, resamples, 1000)]
    )
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def wilson_ci(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a success rate from `successes` of `n` trials (n >= 1): unlike the
    bootstrap it is not empty at 0/n or n/n (e.g. 0 of 3 gives [0, 0.56])."""
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def bootstrap_diff_ci(a, b, seed: int = 0, resamples: int = BOOTSTRAP) -> tuple[float, float]:
    """95% percentile-bootstrap interval of mean(a) − mean(b) for two independent samples (e.g. the
    seeds of one experiment under two code versions, whose random streams differ): each resampled on
    its own."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    rng = np.random.default_rng(seed)
    diffs = a[rng.integers(0, len(a), (resamples, len(a)))].mean(1) - b[
        rng.integers(0, len(b), (resamples, len(b)))
    ].mean(1)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(lo), float(hi)


def iqm(x) -> float:
    """The interquartile mean of `x` [n]: the mean of its middle half, trimming ⌊n/4⌋ entries from each
    end (SciPy's `trim_mean(x, 0.25)`; the aggregate that rliable recommends over the mean). Below 4
    entries nothing is trimmed and it is the mean."""
    return float(scipy.stats.trim_mean(np.asarray(x, float), 0.25))


def iqm_ci(x, seed: int = 0, resamples: int = BOOTSTRAP) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of the IQM of `x` [n], resampling its entries (seeds), by
    `scipy.stats.bootstrap`; deterministic given `seed`. None for fewer than 2 entries."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return None
    result = scipy.stats.bootstrap(
        (x,), partial(scipy.stats.trim_mean, proportiontocut=0.25), n_resamples=resamples,
        method="percentile", rng=np.random.default_rng(seed), vectorized=True,
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def t_ci(x) -> tuple[float, float] | None:
    """95% Student-t interval of the mean of `x` [n]: mean ± t₀.₉₇₅,ₙ₋₁ · s/√n (s with ddof = 1), wider
    than the percentile bootstrap at a handful of seeds. None for fewer than 2 entries."""
    x = np.asarray(x, float)
    if len(x) < 2:
        return None
    half = scipy.stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x))
    return float(x.mean() - half), float(x.mean() + half)


def t_test_p(x) -> float:
    """Two-sided p-value of the one-sample t-test of mean(x) = 0 (paired differences); 0 when every
    entry is the same non-zero value, 1 when every entry is 0. Needs 2 or more entries."""
    x = np.asarray(x, float)
    if np.all(x == x[0]):
        return 0.0 if x[0] != 0 else 1.0
    return float(scipy.stats.ttest_1samp(x, 0.0).pvalue)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values of a family of m tests (Holm 1979): the i-th smallest p
    becomes max over j <= i of min(1, (m − j + 1) · p_(j)); reject where the adjusted p < α. Controls
    the family-wise error rate at α under any dependence between the tests."""
    p = np.asarray(p_values, float)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (len(p) - np.arange(len(p))) * p[order])
    adjusted = np.empty_like(p)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted
