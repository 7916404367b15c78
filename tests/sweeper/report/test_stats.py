"""Seed statistics: sample std (ddof 1), seeded bootstrap intervals, Welch's test and P(B > A) on known numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from sweeper.report import stats

A = [0.90, 0.92, 0.94, 0.96]
B = [0.80, 0.82, 0.84, 0.86]


def test_describe_uses_the_sample_std_and_a_seeded_interval():
    d = stats.describe(A, seed=0)
    assert d["n"] == 4 and d["mean"] == pytest.approx(0.93) and d["min"] == 0.90 and d["max"] == 0.96
    assert d["std"] == pytest.approx(math.sqrt(0.002 / 3))  # ddof = 1, not the population 0.02236
    assert d["std"] != pytest.approx(np.std(A))
    assert 0.90 <= d["ci_low"] < 0.93 < d["ci_high"] <= 0.96
    assert stats.describe(A, seed=0) == d  # seeded: the same numbers every time


def test_one_seed_has_no_std_and_no_interval_and_nan_is_dropped():
    d = stats.describe([0.8, float("nan"), float("inf")])
    assert d["n"] == 1 and d["mean"] == 0.8 and math.isnan(d["std"]) and math.isnan(d["ci_low"])
    empty = stats.describe([])
    assert empty["n"] == 0 and math.isnan(empty["mean"])
    same = stats.describe([0.5, 0.5, 0.5])
    assert same["std"] == 0 and same["ci_low"] == same["ci_high"] == 0.5


def test_compare_welch_and_probability_of_improvement():
    c = stats.compare(A, B, seed=0)
    assert c["diff"] == pytest.approx(-0.10)
    se = math.sqrt(0.002 / 3 / 4 * 2)  # sqrt(s_a^2/n_a + s_b^2/n_b)
    assert c["welch_t"] == pytest.approx(-0.10 / se) and c["welch_df"] == pytest.approx(6.0)  # equal n and variance
    assert c["welch_p"] == pytest.approx(2 * sps.t.sf(0.10 / se, 6))
    assert c["p_improve"] == 0.0  # every seed of B is below every seed of A
    assert c["diff_ci_low"] <= -0.10 <= c["diff_ci_high"] < 0
    flipped = stats.compare(B, A, seed=0)
    assert flipped["p_improve"] == 1.0 and flipped["diff"] == pytest.approx(0.10)


def test_probability_of_improvement_counts_ties_half():
    assert stats.probability_of_improvement([1, 2], [2, 3]) == pytest.approx((0.5 + 1 + 1 + 1) / 4)
    assert stats.probability_of_improvement([1, 1], [1, 1]) == 0.5


def test_compare_with_one_seed_or_no_variance_has_no_test():
    one = stats.compare([0.9], A)
    assert one["n_a"] == 1 and math.isnan(one["welch_p"]) and math.isnan(one["diff_ci_low"])
    assert one["diff"] == pytest.approx(0.03)
    flat = stats.compare([0.5, 0.5], [0.7, 0.7])
    assert math.isnan(flat["welch_t"]) and flat["p_improve"] == 1.0 and flat["diff_ci_low"] == pytest.approx(0.2)
