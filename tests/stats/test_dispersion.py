"""The design effect of a dependent categorical stream (stats.dispersion), and the tempered
e-CUSUM that uses it: measured on streams whose dependence is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from missionwatch.stats.dispersion import Dispersion
from missionwatch.stats.edetect import BernoulliECusum


def _feed(values: np.ndarray) -> Dispersion:
    d = Dispersion()
    for v in values.tolist():
        d.add(str(v))
    d.factor()
    return d


def _clustered(rng: np.random.Generator, n: int, sizes: tuple[int, ...], p: np.ndarray) -> np.ndarray:
    """Clusters of len(sizes)-uniform size, each one value drawn from p."""
    size = rng.choice(sizes, n)
    return np.repeat(rng.choice(len(p), n, p=p), size)[:n]


MIX = np.array([0.4, 0.3, 0.2, 0.1])


def test_independent_draws_have_a_design_effect_near_one() -> None:
    rng = np.random.default_rng(1)
    phis = [_feed(rng.choice(4, 20_000, p=MIX)).phi for _ in range(10)]
    assert max(phis) < 1.12 and np.mean(phis) < 1.06, phis


def test_independent_draws_cost_little_at_a_baseline_of_2000() -> None:
    """The sum stops where the dependence does, so on independent draws the estimate is
    nearly exact and the detectors keep their speed: a fixed window of 64 lags read 1 +- 0.2
    here."""
    rng = np.random.default_rng(6)
    ds = [_feed(rng.choice(4, 2000, p=MIX)) for _ in range(20)]
    assert np.std([d.estimate() for d in ds]) < 0.08
    assert np.mean([d.factor() for d in ds]) < 1.15


@pytest.mark.parametrize(("sizes", "expected"), [((1, 2, 3), 14 / 6), ((3,), 3.0), ((1, 5), 26 / 6)])
def test_clusters_sharing_a_value_have_the_kish_design_effect(sizes: tuple[int, ...], expected: float) -> None:
    """Clusters of m actions sharing one value: E[m^2] / E[m] (Kish), for any mix."""
    rng = np.random.default_rng(2)
    phis = [_feed(_clustered(rng, 20_000, sizes, MIX)).phi for _ in range(6)]
    assert np.mean(phis) == pytest.approx(expected, rel=0.08), phis


def test_a_binary_stream_matches_the_categorical_formula() -> None:
    rng = np.random.default_rng(3)
    x = _clustered(rng, 20_000, (1, 2, 3), np.array([0.85, 0.15]))
    assert _feed(x).phi == pytest.approx(14 / 6, rel=0.1)


def test_the_factor_is_one_until_there_is_data_and_never_below_one() -> None:
    d = Dispersion()
    for i in range(150):
        d.add("a" if i % 2 else "b")  # perfectly alternating: negative autocorrelation
    assert d.factor() == 1.0  # too few observations
    for i in range(2000):
        d.add("a" if i % 2 else "b")
    assert d.phi == 1.0 and d.factor() >= 1.0
    assert Dispersion(lags=0).factor() == 1.0


def test_a_stream_of_one_value_has_nothing_to_estimate() -> None:
    d = Dispersion()
    for _ in range(1000):
        d.add("only")
    assert d.factor() == pytest.approx(1.0 + (4 / 1000) ** 0.5)  # phi 1, one standard error (of one lag) up


def test_repeats_are_counted_exactly_across_chunks() -> None:
    """Every pair of equal values up to `lags` apart, however the stream was cut into the
    chunks it was absorbed in: the brute-force count, and phi from it (Geyer's initial
    positive sequence over the pooled autocorrelations)."""
    rng = np.random.default_rng(4)
    x = _clustered(rng, 3000, (1, 2), MIX).tolist()
    lags = 16
    brute = np.zeros((lags, 4), dtype=np.int64)
    for j in range(1, lags + 1):
        for i in range(j, len(x)):
            brute[j - 1, x[i]] += x[i] == x[i - j]
    p = np.bincount(x, minlength=4) / len(x)
    rho = [1.0] + [((brute[j - 1] / p).sum() / (len(x) - j) - 1) / 3 for j in range(1, lags + 1)]
    phi = -1.0
    for k in range(0, lags, 2):
        if rho[k] + rho[k + 1] <= 0:
            break
        phi += 2 * (rho[k] + rho[k + 1])
    assert 1.3 < phi < 1.7  # clusters of 1-2: Kish 5/3
    for every in (None, 1, 97, 300):
        d = Dispersion(lags)
        for i, v in enumerate(x):
            d.add(str(v))
            if every and i % every == 0:
                d.factor()
        assert d.estimate() == pytest.approx(phi, rel=1e-12), every
        order = [d.codes[str(c)] for c in range(4)]
        assert np.array_equal(d.repeats[:, order], brute), every
        assert d.status()["lags_summed"] < lags  # the dependence ends early: so does the sum


def _false_alarms(phi: float | None, runs: int, seed: int) -> int:
    """Alarms of a rise detector on clustered streams with no rise (p = p0, clusters 1-3)."""
    rng = np.random.default_rng(seed)
    alarms = 0
    for _ in range(runs):
        x = _clustered(rng, 20_000, (1, 2, 3), np.array([0.7, 0.3])) == 1
        det = BernoulliECusum(0.3, (1.5, 2.0, 3.0), 1e-3, phi=phi or 1.0)
        pos = 0
        while (hit := det.update_many(x[pos:])) is not None:
            alarms += 1
            pos += hit + 1
            det.reset()
    return alarms


def test_tempering_by_the_design_effect_restores_the_false_alarm_budget() -> None:
    """At alpha 1e-3 the budget is one false alarm per 1,000 actions: 20 per 20,000-action
    stream. Untempered, clustered streams overshoot it; tempered by their design effect
    (14/6), they keep it."""
    runs = 10
    budget = runs * 20_000 * 1e-3
    assert _false_alarms(None, runs, 5) > 2 * budget
    assert _false_alarms(14 / 6, runs, 5) <= budget


def test_a_fresh_category_in_every_action_keeps_the_counts_bounded() -> None:
    """Hostile: an agent that names a new template in every action. Past MAX_CATEGORIES the
    new ones share one code, so memory and time stay flat; a clustered stream of fresh
    names (each name twice in a row) still reads as clustered."""
    from missionwatch.stats.dispersion import MAX_CATEGORIES

    d = Dispersion()
    for i in range(50_000):
        d.add(f"t{i}\u200b")  # zero-width look-alikes, each new
        if i % 1000 == 0:
            d.factor()
    assert len(d.codes) == MAX_CATEGORIES and d.repeats.shape == (64, MAX_CATEGORIES)
    assert d.factor() < 1.1
    twice = Dispersion()
    for i in range(20_000):
        twice.add(f"t{i // 2}")
    assert twice.estimate() == pytest.approx(2.0, rel=0.1)  # Kish for pairs, inside the pooled code too


def _waves(rng: np.random.Generator, n: int) -> np.ndarray:
    """Runs of 200-2,000 of one value drawn from MIX."""
    out: list[int] = []
    while len(out) < n:
        out += [int(rng.choice(4, p=MIX))] * int(rng.integers(200, 2001))
    return np.array(out[:n])


def test_runs_longer_than_the_lags_fall_back_to_batch_means() -> None:
    """Waves: the lag sequence is still positive at the last lag, so the estimate is cut, not
    ended; batch means over blocks of 256 read about 256 (a run fills its blocks), and the
    larger is used. Independent draws never fall back, and read batch means near 1."""
    rng = np.random.default_rng(8)
    waves = [_feed(_waves(rng, 6_000)) for _ in range(5)]
    assert all(d.cut and d.phi > 100 and d.factor() >= d.phi for d in waves), [d.status() for d in waves]
    iid = [_feed(rng.choice(4, 6_000, p=MIX)) for _ in range(20)]
    assert not any(d.cut for d in iid)
    means = [d.batch_means() for d in iid]
    assert 0.6 < float(np.mean(means)) < 1.4 and max(d.phi for d in iid) < 1.3, means


def test_clusters_within_the_lags_are_not_cut() -> None:
    """Contacts of one to three actions: the sequence ends within a few lags; batch means
    are not needed and not taken."""
    rng = np.random.default_rng(9)
    ds = [_feed(_clustered(rng, 6_000, (1, 2, 3), MIX)) for _ in range(10)]
    assert not any(d.cut for d in ds)
