"""Fairness on per-action metrics when a subject's actions share its propensity: heavy subjects
(1% of subjects get 30% of actions) with their own escalation propensities (Beta random
effects), cohorts fair in the population. Taking each action as independent understates the
variance and escalates fair missions; with each action's subject named (`before`), the
intervals take the variance between subjects (cluster-robust) and hold alpha."""

from __future__ import annotations

import numpy as np
import pytest

from missionwatch.detect import FairnessDelta
from missionwatch.spec import FairnessRule
from missionwatch.stats.cs import MeanStat, RatioStat

RULE = FairnessRule(metric="escalation_rate", harm="both", max_gap=0.005)
ALPHA = 0.05  # the family's: each of the four cohorts is judged at ALPHA / 4, as the monitor splits it


def actions(rng: np.random.Generator, n: int = 10_000, subjects: int = 3_000) -> tuple[np.ndarray, ...]:
    """(subject, cohort of the subject, 0/1 observation) per action."""
    cohort = rng.integers(0, 4, subjects)
    propensity = rng.beta(0.2, 3.8, subjects)  # mean 0.05, most subjects near 0, a few far above
    heavy = rng.random(n) < 0.3
    subject = np.where(heavy, rng.integers(0, subjects // 100, n), rng.integers(0, subjects, n))
    return subject, cohort[subject], (rng.random(n) < propensity[subject]).astype(float)


def first_beyond(subject: np.ndarray, cohort: np.ndarray, x: np.ndarray, *, clustered: bool) -> int | None:
    fd = FairnessDelta(RULE, "age_band", ALPHA / 4, min_samples=30, max_cohorts=4)
    sums: dict[int, tuple[float, int]] = {}
    for i, (s, c, v) in enumerate(zip(subject.tolist(), cohort.tolist(), x.tolist(), strict=True)):
        before = sums.get(s, (0.0, 0))
        sums[s] = (before[0] + v, before[1] + 1)
        fd.update(str(c), v, before=before if clustered else None)
        if i % 250 == 249 and any(fd.evaluate(k).verdict == "beyond" for k in sorted(fd.cohorts)):
            return i
    return None


def test_fair_clustered_missions_hold_alpha_only_with_subjects_named() -> None:
    rng = np.random.default_rng(11)
    runs, ours, naive = 200, 0, 0
    for _ in range(runs):
        subject, cohort, x = actions(rng)
        ours += first_beyond(subject, cohort, x, clustered=True) is not None
        naive += first_beyond(subject, cohort, x, clustered=False) is not None
    # at a true rate of 0.05, 16 or more of 200 has probability 0.03; measured: 0 of 200
    assert ours <= 15, ours
    assert naive >= 40, naive  # measured: 64 of 200


def test_a_real_gap_is_still_found() -> None:
    rng = np.random.default_rng(12)
    found = 0
    for _ in range(10):
        subject, cohort, x = actions(rng)
        x = np.where((cohort == 3) & (rng.random(x.size) < 0.15), 1.0, x)  # cohort 3 escalated ~0.14 more
        found += first_beyond(subject, cohort, x, clustered=True) is not None
    assert found >= 9, found


@pytest.mark.parametrize("seed", [1, 2])
def test_grown_clusters_equal_a_recount(seed: int) -> None:
    rng = np.random.default_rng(seed)
    subject, _, x = actions(rng, n=2_000, subjects=300)
    stat, sums = RatioStat(), {}
    for s, v in zip(subject.tolist(), x.tolist(), strict=True):
        stat.grow(v, sums.get(s))
        b = sums.get(s, (0.0, 0))
        sums[s] = (b[0] + v, b[1] + 1)
    xs = np.array([v[0] for v in sums.values()])
    ks = np.array([v[1] for v in sums.values()], dtype=float)
    want = RatioStat(len(sums), xs.sum(), ks.sum(), (xs * xs).sum(), (xs * ks).sum(), (ks * ks).sum())
    for f in ("n", "x", "k", "xx", "xk", "kk"):
        assert getattr(stat, f) == pytest.approx(getattr(want, f)), f
    r = xs.sum() / ks.sum()
    m = stat.as_mean()
    assert m.mean == pytest.approx(r) and m.var / m.n == pytest.approx(((xs - r * ks) ** 2).sum() / ks.sum() ** 2)


def test_singleton_units_are_the_observations() -> None:
    stat = MeanStat()
    for v in (0.0, 1.0, 1.0, 3.5, -2.0):
        stat.update(v)
    m = RatioStat.singletons(stat).as_mean()
    assert (m.n, m.mean, m.var) == pytest.approx((stat.n, stat.mean, stat.var))
