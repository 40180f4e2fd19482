"""e-detectors: every incremental statistic equals its batch recompute at every
prefix; the vectorized scan equals repeated updates; run lengths keep their
promise by simulation; the tabular CUSUM reproduces Montgomery's ARL table."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import logsumexp

from missionwatch.stats.edetect import BernoulliECusum, PoissonECusum, TabularCusum

bits = st.lists(st.booleans(), min_size=1, max_size=300)
counts = st.lists(st.integers(0, 6), min_size=1, max_size=300)
rates = st.floats(0.01, 0.6)
rises = st.lists(st.floats(1.05, 4.0), min_size=1, max_size=4)


def _log_l_bernoulli(det: BernoulliECusum, xs: list[bool]) -> np.ndarray:
    """log L per step and alternative, from the model (independent of the class's tables)."""
    p0 = det.p0
    alts = np.minimum(p0 * np.asarray(det.rises), 1 - 1e-6)
    x = np.asarray(xs, dtype=float)[:, None]
    return x * np.log(alts / p0) + (1 - x) * np.log((1 - alts) / (1 - p0))


def _batch_cusum(log_l: np.ndarray) -> np.ndarray:
    """log M_t of the e-CUSUM as max over start s of the summed log L from s to t."""
    c = np.vstack([np.zeros((1, log_l.shape[1])), np.cumsum(log_l, axis=0)])
    return np.array([c[t] - c[:t].min(axis=0) for t in range(1, len(c))])


def _batch_sr(log_l: np.ndarray) -> np.ndarray:
    """log M_t of the e-SR as log of the sum over start s of the product of L from s to t."""
    c = np.vstack([np.zeros((1, log_l.shape[1])), np.cumsum(log_l, axis=0)])
    return np.array([logsumexp(c[t][None, :] - c[:t], axis=0) for t in range(1, len(c))])


def _mix(log_m: np.ndarray) -> np.ndarray:
    return logsumexp(log_m, axis=-1) - math.log(log_m.shape[-1])


@settings(max_examples=80, deadline=None)
@given(bits, rates, rises)
def test_bernoulli_cusum_and_sr_equal_batch_at_every_prefix(xs, p0, rs) -> None:
    for kind, batch in (("cusum", _batch_cusum), ("sr", _batch_sr)):
        det = BernoulliECusum(p0, rs, 0.01, kind=kind)  # type: ignore[arg-type]
        expected = _mix(batch(_log_l_bernoulli(det, xs)))
        for t, x in enumerate(xs):
            det.update(x)
            assert det.log_statistic == pytest.approx(expected[t], rel=1e-9, abs=1e-9)
            assert det.alarm == (expected[t] >= math.log(100))


@settings(max_examples=80, deadline=None)
@given(counts, st.floats(0.05, 3.0), rises)
def test_poisson_cusum_equals_batch_at_every_prefix(xs, m0, rs) -> None:
    det = PoissonECusum(m0, rs, 0.01)
    r = np.asarray(rs)
    log_l = np.asarray(xs, dtype=float)[:, None] * np.log(r)[None, :] - (r - 1)[None, :] * m0
    expected = _mix(_batch_cusum(log_l))
    for t, x in enumerate(xs):
        det.update(x)
        assert det.log_statistic == pytest.approx(expected[t], rel=1e-9, abs=1e-9)


@settings(max_examples=60, deadline=None)
@given(arrays(bool, st.integers(1, 400)), st.integers(0, 399), rates, rises)
def test_scan_equals_repeated_updates(xs, cut, p0, rs) -> None:
    """update_many over any split of a stream: the same state, the same first alarm."""
    one, two = BernoulliECusum(p0, rs, 0.01), BernoulliECusum(p0, rs, 0.01)
    first = None
    for i, x in enumerate(xs):
        one.update(bool(x))
        if first is None and one.alarm:
            first = i
    cut = min(cut, len(xs))
    a = two.update_many(xs[:cut])
    b = two.update_many(xs[cut:])
    got = a if a is not None else (None if b is None else cut + b)
    assert got == first
    assert two.log_statistic == pytest.approx(one.log_statistic, rel=1e-9, abs=1e-9)
    assert two.n == one.n == len(xs)


def _run_lengths(make, draw, runs: int, cap: int, rng: np.random.Generator) -> np.ndarray:
    out = np.empty(runs)
    for i in range(runs):
        det = make()
        hit = det.update_many(draw(rng, cap))
        out[i] = cap if hit is None else hit + 1
    return out


def test_e_cusum_average_run_length_is_at_least_one_over_alpha() -> None:
    """On an unchanged stream, ARL >= 1/alpha (alpha = 0.01: 100). The capped mean is a
    lower bound of the ARL, so passing here is conservative."""
    rng = np.random.default_rng(7)
    for make, draw in (
        (lambda: BernoulliECusum(0.1, (1.5, 2.0), 0.01), lambda r, n: r.random(n) < 0.1),
        (lambda: BernoulliECusum(0.1, (1.5, 2.0), 0.01), lambda r, n: r.random(n) < 0.08),  # below p0
        (lambda: PoissonECusum(0.5, (1.5, 2.0), 0.01), lambda r, n: r.poisson(0.5, n)),
    ):
        rl = _run_lengths(make, draw, 2000, 3000, rng)
        assert rl.mean() >= 100, rl.mean()


def test_e_cusum_detects_the_rise_it_is_tuned_for() -> None:
    rng = np.random.default_rng(8)
    rl = _run_lengths(lambda: BernoulliECusum(0.1, (1.5, 2.0), 0.01), lambda r, n: r.random(n) < 0.2,
                      1000, 3000, rng)
    # log(1/alpha) / KL(0.2 || 0.1) is about 70 observations
    assert 40 < np.median(rl) < 140


@pytest.mark.parametrize(("h", "shift", "arl", "tol"), [
    (4.0, 0.0, 168.0, 0.06), (4.0, 1.0, 8.38, 0.04), (5.0, 0.0, 465.0, 0.06), (5.0, 1.0, 10.4, 0.04),
])
def test_tabular_cusum_reproduces_montgomerys_arl_table(h, shift, arl, tol) -> None:
    """Montgomery, Introduction to Statistical Quality Control, table 9.3 (two-sided, k = 0.5)."""
    rng = np.random.default_rng(int(h * 10 + shift))
    runs = 3000
    lengths = []
    for _ in range(runs):
        det = TabularCusum(0.0, 1.0, k=0.5, h=h, two_sided=True)
        n = 0
        while not det.alarm:
            for x in rng.normal(shift, 1.0, 64):
                det.update(float(x))
                n += 1
                if det.alarm:
                    break
        lengths.append(n)
    assert np.mean(lengths) == pytest.approx(arl, rel=tol)
