"""The strict mode's betting confidence sequence: the running capital equals its batch
recompute at every prefix, the interval covers at all times at once (also where the
asymptotic sequence does not), and the difference's e-value matches its interval."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps

from missionwatch.stats.betting import BettingCS, strict_linear, strict_linear_e_value
from missionwatch.stats.cs import MeanStat, mean_cs


def batch_capital(xs: np.ndarray, m: np.ndarray, alpha: float, c: float) -> tuple[np.ndarray, np.ndarray]:
    """Waudby-Smith and Ramdas's hedged capital, written out from the paper's formulas
    (eq. 26-27) over a whole sequence at once: log K+ and log K- at each m."""
    n = len(xs)
    i = np.arange(1, n + 1)
    mu = (0.5 + np.cumsum(xs)) / (i + 1)  # mu_i after observation i
    mu_prev = np.concatenate([[0.5], mu[:-1]])
    var = (0.25 + np.cumsum((xs - mu_prev) ** 2)) / (i + 1)  # sigma^2_i
    var_prev = np.concatenate([[0.25], var[:-1]])
    lam = np.sqrt(2 * np.log(2 / alpha) / (var_prev * i * np.log(1 + i)))
    with np.errstate(divide="ignore"):
        lp = np.minimum(lam[:, None], c / m[None, :])
        lm = np.minimum(lam[:, None], c / (1 - m[None, :]))
    d = xs[:, None] - m[None, :]
    return np.log(1 + lp * d).sum(axis=0), np.log(1 - lm * d).sum(axis=0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=120), st.integers(2, 60),
       st.sampled_from([0.5, 0.05, 1e-4]), st.data())
def test_capital_equals_its_batch_recompute_at_every_prefix(xs, grid, alpha, data) -> None:
    arr = np.asarray(xs)
    one = BettingCS(alpha, grid=grid)
    for t in range(1, len(xs) + 1):
        one.update(xs[t - 1])
        lp, lm = batch_capital(arr[:t], one.m, alpha, one.c)
        np.testing.assert_allclose(one.log_plus, lp, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(one.log_minus, lm, rtol=1e-9, atol=1e-9)
        assert one.n == t and one.mean == pytest.approx(arr[:t].mean())
    # blocks of any sizes give the same capital as single updates
    cuts = sorted(data.draw(st.lists(st.integers(0, len(xs)), max_size=4)))
    blocks = BettingCS(alpha, grid=grid)
    for lo, hi in zip([0, *cuts], [*cuts, len(xs)], strict=True):
        blocks.update_many(arr[lo:hi])
    np.testing.assert_allclose(blocks.log_plus, one.log_plus, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(blocks.log_minus, one.log_minus, rtol=1e-9, atol=1e-9)
    assert blocks.interval() == one.interval()


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 1, allow_nan=False), min_size=1, max_size=80), st.floats(0, 1),
       st.floats(1e-6, 0.5))
def test_every_mean_outside_the_interval_has_e_value_at_least_one_over_alpha(xs, m, alpha) -> None:
    cs = BettingCS(0.05, grid=100)
    cs.update_many(np.asarray(xs))
    lo, hi = cs.interval(alpha)
    if not lo <= m <= hi:
        assert cs.e_value(m) >= 1 / alpha
    assert lo <= hi


@pytest.mark.parametrize("p", [0.02, 0.3])
def test_betting_interval_covers_at_all_times_at_once(p: float) -> None:
    """500 streams of 2,000 Bernoulli(p) observations, the interval read after every 10th:
    it ever misses p in at most alpha of them. For a rare event (p = 0.02) the asymptotic
    sequence, read from the 10th observation on, misses far more often than alpha (a run of
    zeros has variance 0): that is what the strict mode is for."""
    rng = np.random.default_rng(21)
    alpha, runs, steps, every = 0.05, 500, 2000, 10
    strict_misses = asym_misses = 0
    for _ in range(runs):
        xs = (rng.random(steps) < p).astype(float)
        sums = np.cumsum(xs)  # 0/1 observations: the sum of squares is the sum
        cs = BettingCS(alpha, grid=200)
        strict_missed = asym_missed = False
        for t in range(every, steps + 1, every):
            cs.update_many(xs[t - every:t])
            lo, hi = cs.interval()
            strict_missed = strict_missed or not lo <= p <= hi
            if not asym_missed:
                alo, ahi = mean_cs(MeanStat(t, float(sums[t - 1]), float(sums[t - 1])), alpha)
                asym_missed = not alo <= p <= ahi
        strict_misses += strict_missed
        asym_misses += asym_missed
    print(f"p={p}: strict missed {strict_misses}/{runs}, asymptotic {asym_misses}/{runs}")
    upper = sps.beta.ppf(0.975, strict_misses + 1, runs - strict_misses)
    assert strict_misses / runs <= alpha and upper <= 0.07, strict_misses
    if p == 0.02:
        assert asym_misses / runs > 2 * alpha, asym_misses


def test_difference_e_value_is_at_least_one_over_alpha_exactly_when_the_interval_is_beyond() -> None:
    rng = np.random.default_rng(5)
    checked = beyond_seen = 0
    for _ in range(150):
        n = int(rng.integers(30, 3000))
        pa = rng.uniform(0.05, 0.5)
        pb = max(pa - rng.uniform(0, 0.25), 0.0)
        grid = int(rng.integers(10, 400))
        a, b = BettingCS(0.01, grid=grid), BettingCS(0.01, grid=grid)
        a.update_many((rng.random(n) < pa).astype(float))
        b.update_many((rng.random(int(rng.integers(30, 3000))) < pb).astype(float))
        coef = float(rng.choice([1.0, 0.8, 1.25]))
        boundary = float(rng.uniform(-0.1, 0.1))
        direction = int(rng.choice([1, -1]))
        e = strict_linear_e_value(a, b, coef, boundary, direction)
        assert e >= 1.0
        levels = [0.5, 0.1, 0.05, 0.01, 1e-3, 1e-6]
        if e < 1e300:
            levels += [min(1 / e * (1 + 1e-9), 0.999), min(1 / e * (1 - 1e-9), 0.999)]
        for alpha in levels:
            _, lo, hi = strict_linear(a, b, coef, alpha)
            beyond = lo > boundary if direction > 0 else hi < boundary
            assert beyond == (e >= 1 / alpha), (e, alpha, lo, hi, boundary)
            checked += 1
            beyond_seen += beyond
    assert beyond_seen > 50 and checked - beyond_seen > 50  # both sides were exercised


def test_difference_covers_a_zero_gap_at_all_times() -> None:
    """Two cohorts at the same rate, 400 runs of 2,000 observations, the gap's interval read
    after every 10th: it ever excludes 0 in at most alpha of the runs."""
    rng = np.random.default_rng(8)
    alpha, runs = 0.05, 400
    misses = 0
    for _ in range(runs):
        a, b = BettingCS(alpha / 2, grid=200), BettingCS(alpha / 2, grid=200)
        for _ in range(100):
            a.update_many((rng.random(10) < 0.15).astype(float))
            b.update_many((rng.random(10) < 0.15).astype(float))
            _, lo, hi = strict_linear(a, b, 1.0, alpha)
            if not lo <= 0 <= hi:
                misses += 1
                break
    assert misses / runs <= alpha, misses


def test_bad_observations_and_settings_are_refused_with_a_reason() -> None:
    cs = BettingCS()
    with pytest.raises(ValueError, match=r"in \[0, 1\], got 1.5"):
        cs.update(1.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        cs.update_many(np.array([0.2, -0.1]))
    assert cs.n == 0  # nothing was taken
    for kw in ({"alpha": 0.0}, {"grid": 1}, {"c": 1.0}):
        with pytest.raises(ValueError):
            BettingCS(**kw)  # type: ignore[arg-type]
    assert strict_linear(cs, BettingCS(), 1.0, 0.05)[1] == -math.inf
    assert strict_linear_e_value(cs, BettingCS(), 1.0, 0.0, 1) == 1.0
