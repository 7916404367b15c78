"""Seed statistics for reports: scipy.stats does the work, this module fixes the conventions.

- Standard deviation: the sample standard deviation over seeds (ddof = 1); n/a (NaN) with one seed.
- Interval: a 95% percentile bootstrap interval of the mean (scipy.stats.bootstrap, 10,000
  resamples, seeded: the same values give the same interval). With 2-5 seeds a percentile
  bootstrap is too narrow (it cannot reach beyond the observed min and max); read it as a
  description of the seeds, not as a guarantee.
- Comparison of B against A: the difference of means B - A with a two-sample bootstrap interval
  (each side resampled on its own), Welch's t-test (scipy.stats.ttest_ind, equal_var=False), and
  the probability of improvement P(B > A): the chance that a random seed of B beats a random seed
  of A, ties counted half (the Mann-Whitney U statistic over n_A * n_B, as rliable defines it),
  with its bootstrap interval.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Sequence

import numpy as np
from scipy import stats

STD_DDOF = 1
CONFIDENCE = 0.95
N_RESAMPLES = 10_000


def _clean(values: Sequence[float]) -> np.ndarray:
    """Finite values only (callers count and report what they drop)."""
    a = np.asarray(values, dtype=float)
    return a[np.isfinite(a)]


def _bootstrap(samples: tuple[np.ndarray, ...], statistic, seed: int) -> tuple[float, float]:
    with warnings.catch_warnings():  # identical values are fine for the percentile method
        warnings.simplefilter("ignore")
        res = stats.bootstrap(samples, statistic, n_resamples=N_RESAMPLES, confidence_level=CONFIDENCE,
                              method="percentile", vectorized=True, rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _mean(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def describe(values: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """n, mean, std (ddof 1), bootstrap interval of the mean, min, max; NaN where undefined."""
    x = _clean(values)
    n = len(x)
    out = {"n": n, "mean": math.nan, "std": math.nan, "ci_low": math.nan, "ci_high": math.nan,
           "min": math.nan, "max": math.nan}
    if n == 0:
        return out
    out.update(mean=float(x.mean()), min=float(x.min()), max=float(x.max()))
    if n >= 2:
        out["std"] = float(x.std(ddof=STD_DDOF))
        out["ci_low"], out["ci_high"] = _bootstrap((x,), _mean, seed)
    return out


def _diff_of_means(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(b, axis=axis) - np.mean(a, axis=axis)


def _p_greater(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    """P(b > a) over all pairs, ties half; works on batches of resamples (last axis = seeds)."""
    a, b = np.moveaxis(a, axis, -1), np.moveaxis(b, axis, -1)
    gt = (b[..., None, :] > a[..., :, None]).mean(axis=(-2, -1))
    eq = (b[..., None, :] == a[..., :, None]).mean(axis=(-2, -1))
    return gt + 0.5 * eq


def probability_of_improvement(a: Sequence[float], b: Sequence[float]) -> float:
    """P(B > A) = U / (n_A n_B), with U the Mann-Whitney statistic of B against A."""
    a, b = _clean(a), _clean(b)
    if len(a) == 0 or len(b) == 0:
        return math.nan
    return float(stats.mannwhitneyu(b, a).statistic / (len(a) * len(b)))


def compare(a: Sequence[float], b: Sequence[float], seed: int = 0) -> dict[str, Any]:
    """B against A: difference of means and its interval, Welch's test, P(B > A) and its interval."""
    a, b = _clean(a), _clean(b)
    out = {"n_a": len(a), "n_b": len(b), "diff": math.nan, "diff_ci_low": math.nan, "diff_ci_high": math.nan,
           "welch_t": math.nan, "welch_df": math.nan, "welch_p": math.nan,
           "p_improve": math.nan, "p_improve_ci_low": math.nan, "p_improve_ci_high": math.nan}
    if len(a) == 0 or len(b) == 0:
        return out
    out["diff"] = float(b.mean() - a.mean())
    out["p_improve"] = probability_of_improvement(a, b)
    if len(a) >= 2 and len(b) >= 2:
        out["diff_ci_low"], out["diff_ci_high"] = _bootstrap((a, b), _diff_of_means, seed)
        out["p_improve_ci_low"], out["p_improve_ci_high"] = _bootstrap((a, b), _p_greater, seed)
        if a.std(ddof=STD_DDOF) > 0 or b.std(ddof=STD_DDOF) > 0:  # no variance on both sides: no test
            t = stats.ttest_ind(b, a, equal_var=False)
            out.update(welch_t=float(t.statistic), welch_df=float(t.df), welch_p=float(t.pvalue))
    return out
