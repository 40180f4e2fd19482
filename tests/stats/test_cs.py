"""Confidence sequences: running statistics equal their batch recompute at every
prefix, and the intervals cover the truth at all times at once (simulation)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from missionwatch.stats.cs import (
    DEFAULT_T0,
    MSPRT,
    MeanStat,
    e_bh,
    linear_cs,
    mean_cs,
    normal_mixture_e_value,
    normal_mixture_halfwidth,
    wilson_upper,
)

values = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=200)


@settings(max_examples=80, deadline=None)
@given(values, st.integers(0, 199))
def test_mean_stat_equals_numpy_at_every_prefix(xs, cut) -> None:
    s = MeanStat()
    arr = np.asarray(xs)
    for t, x in enumerate(xs, 1):
        s.update(x)
        assert s.n == t
        assert s.mean == pytest.approx(arr[:t].mean(), rel=1e-9, abs=1e-9)
        assert s.var == pytest.approx(arr[:t].var() if t > 1 else 0.0, rel=1e-6, abs=1e-6)
    cut = min(cut, len(xs))
    a = MeanStat()
    for x in xs[:cut]:
        a.update(x)
    b = s.minus(a)
    assert b.n == len(xs) - cut
    if b.n:
        assert b.mean == pytest.approx(arr[cut:].mean(), rel=1e-6, abs=1e-6)
    merged = a.merge(b)
    assert merged.n == s.n and merged.total == pytest.approx(s.total)


@settings(max_examples=60, deadline=None)
@given(values, values, st.floats(0.5, 2.0), st.floats(1e-6, 0.2))
def test_linear_cs_equals_its_formula(xs, ys, c, alpha) -> None:
    a, b = MeanStat(), MeanStat()
    for x in xs:
        a.update(x)
    for y in ys:
        b.update(y)
    est, lo, hi = linear_cs(a, b, c, alpha)
    va, vb = np.var(xs), np.var(ys) * c * c
    v = va / len(xs) + vb / len(ys)
    assert est == pytest.approx(np.mean(xs) - c * np.mean(ys), rel=1e-9, abs=1e-6)
    if v > 0:
        hw = normal_mixture_halfwidth(v, (va + vb) / v, alpha)
        assert (hi - lo) / 2 == pytest.approx(hw, rel=1e-6)


def test_wilson_upper_equals_its_closed_form() -> None:
    # Wilson score interval upper bound, z = 3.09, against its closed form computed independently
    for k, n in ((0, 10), (5, 100), (100, 1000), (999, 1000)):
        p, z = k / n, 3.09
        expected = (p + z * z / (2 * n) + z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))) / (1 + z * z / n)
        assert wilson_upper(k, n) == pytest.approx(min(expected, 1.0))


def test_mean_cs_covers_at_all_times_at_once() -> None:
    """1,000 Bernoulli(0.1) streams, an interval after every observation from the 30th
    (the spec's min_samples) to the 3,000th: the chance of ever missing 0.1 is <= alpha."""
    rng = np.random.default_rng(11)
    alpha, p, runs, steps = 0.05, 0.1, 1000, 3000
    misses = 0
    for _ in range(runs):
        s = MeanStat()
        for t, x in enumerate(rng.random(steps) < p, 1):
            s.update(float(x))
            if t >= 30:
                lo, hi = mean_cs(s, alpha, prior_var=p * (1 - p), prior_n=10)
                if not lo <= p <= hi:
                    misses += 1
                    break
    upper = sps.beta.ppf(0.975, misses + 1, runs - misses)
    assert upper <= 0.07 and misses / runs <= alpha, misses


def test_difference_cs_covers_a_zero_gap_at_all_times() -> None:
    """Two cohorts with the same rate, 1,000 runs of 2,000 observations each: the interval
    of the gap ever excludes 0 in at most alpha of runs."""
    rng = np.random.default_rng(12)
    alpha, runs, steps = 0.05, 1000, 2000
    misses = 0
    for _ in range(runs):
        a, b = MeanStat(), MeanStat()
        xs = rng.random(steps) < 0.2
        side = rng.random(steps) < 0.5
        for t, (x, s) in enumerate(zip(xs, side, strict=True), 1):
            (a if s else b).update(float(x))
            if a.n >= 30 and b.n >= 30 and t % 5 == 0:
                pooled = a.merge(b).var
                _, lo, hi = linear_cs(a, b, 1.0, alpha, prior_var=pooled, prior_n=10)
                if not lo <= 0 <= hi:
                    misses += 1
                    break
    assert misses / runs <= alpha and sps.beta.ppf(0.975, misses + 1, runs - misses) <= 0.07, misses


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.floats(0, 1e6), max_size=12),
       st.floats(0.01, 0.2), st.integers(0, 20))
def test_e_bh_equals_its_definition(es, alpha, extra) -> None:
    """Reject the k* largest e-values, k* the largest k with e_(k) >= K / (alpha k)."""
    k_all = max(len(es) + extra, 1)
    values = sorted(es.values(), reverse=True)
    k_star = max((k for k in range(1, len(values) + 1) if values[k - 1] >= k_all / (alpha * k)), default=0)
    got = e_bh(es, alpha, len(es) + extra)
    assert len(got) == k_star
    if got:
        assert min(es[n] for n in got) >= max((e for n, e in es.items() if n not in got), default=0)


@settings(max_examples=100, deadline=None)
@given(st.floats(-1, 1), st.floats(1e-4, 1.0), st.floats(1, 1e5), st.floats(1e-6, 0.2))
def test_e_value_reaches_one_over_alpha_exactly_where_the_interval_excludes(dev, v, n, alpha) -> None:
    hw = normal_mixture_halfwidth(v, n, alpha)
    e = normal_mixture_e_value(dev, v, n)
    if abs(abs(dev) - hw) > 1e-9 * max(hw, 1.0):
        assert (e >= 1 / alpha) == (abs(dev) > hw)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=60),
       st.lists(st.floats(-10, 10, allow_nan=False), min_size=1, max_size=60),
       st.floats(0.1, 5.0), st.floats(0.1, 5.0), st.floats(-1, 1))
def test_msprt_is_the_normal_mixture_on_the_effect_scale(xs, ys, var_a, var_b, theta0) -> None:
    """Johari et al.'s Lambda with tau2 = (var_a + var_b) / t0 equals the normal-mixture
    e-value of this module, at every prefix; the p-value is the running min of 1/Lambda."""
    t = MSPRT((var_a + var_b) / DEFAULT_T0, theta0, var_a=var_a, var_b=var_b)
    p = 1.0
    for i in range(max(len(xs), len(ys))):
        if i < len(xs):
            t.update(xs[i], "a")
            p = min(p, 1 / t.e_value)
        if i < len(ys):
            t.update(ys[i], "b")
            p = min(p, 1 / t.e_value)
        na, nb = min(i + 1, len(xs)), min(i + 1, len(ys))
        v = var_a / na + var_b / nb
        dev = float(np.mean(xs[:na]) - np.mean(ys[:nb]) - theta0)
        assert t.e_value == pytest.approx(normal_mixture_e_value(dev, v, (var_a + var_b) / v), rel=1e-9)
        assert t.p_value == pytest.approx(p, rel=1e-12)
        lo, hi = t.interval(0.05)  # theta0 on the interval's edge has Lambda = 1/alpha
        edge = MSPRT(t.tau2, hi, var_a=var_a, var_b=var_b)
        edge.a, edge.b = t.a, t.b
        assert edge.e_value == pytest.approx(20.0, rel=1e-6)
        assert lo <= hi


def test_msprt_p_value_is_always_valid() -> None:
    """1,000 A/A tests of 1,000 normal pairs each, Lambda checked after every pair: the
    always-valid p-value ever drops below alpha in at most alpha of them."""
    rng = np.random.default_rng(31)
    alpha, runs, steps = 0.05, 1000, 1000
    rejected = 0
    for _ in range(runs):
        t = MSPRT(tau2=0.05, var_a=1.0, var_b=1.0, alpha=alpha)
        for x, y in rng.normal(0, 1, (steps, 2)):
            t.update(float(x), "a").update(float(y), "b")
            if t.rejected:
                rejected += 1
                break
    upper = sps.beta.ppf(0.975, rejected + 1, runs - rejected)
    assert rejected / runs <= alpha and upper <= 0.07, rejected
