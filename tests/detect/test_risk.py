"""Risk signals on seeded data: the verdict (elevated, within_threshold, unchanged,
insufficient_data) after every update equals a batch recompute with numpy of the
confidence sequence for value - max_ratio * baseline (the normal mixture of stats/cs.py, t0 = 500),
and the first index of each verdict is pinned."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from missionwatch.detect import RiskSignal
from missionwatch.spec import RiskRule

T0 = 500.0
PRIOR_N = 10.0  # pseudo-observations of the baseline variance that steady each side's variance
ALPHA = 0.05
MIN = 50


def batch_verdict(base: np.ndarray, post: np.ndarray, ratio: float, statistic: str = "mean") -> str:
    """The verdict from all the data at once."""
    if len(base) < MIN or len(post) < MIN:
        return "insufficient_data"
    if statistic == "variance":  # the baseline variance taken as known
        y = (post - base.mean()) ** 2
        hw = _halfwidth(y.var() / len(y), len(y))
        lo, hi = y.mean() - hw - ratio * base.var(), y.mean() + hw - ratio * base.var()
    else:
        prior = base.var()
        va = (len(post) * post.var() + PRIOR_N * prior) / (len(post) + PRIOR_N)
        vb = (len(base) * base.var() + PRIOR_N * prior) / (len(base) + PRIOR_N) * ratio**2
        v = va / len(post) + vb / len(base)
        hw = _halfwidth(v, (va + vb) / v)
        est = post.mean() - ratio * base.mean()
        lo, hi = est - hw, est + hw
    return "elevated" if lo > 0 else ("within_threshold" if hi < 0 else "unchanged")


def _halfwidth(v: float, n: float) -> float:
    return math.sqrt(v * (1 + T0 / n) * math.log((1 + n / T0) / ALPHA**2))


def verdicts(base: Sequence[float], post: Sequence[float], ratio: float = 1.5,
             statistic: str = "mean") -> list[str]:
    """The signal's verdict after each post observation, checked against the batch recompute."""
    rs = RiskSignal(RiskRule(metric="m", max_ratio=ratio, statistic=statistic), ALPHA, MIN)  # type: ignore[arg-type]
    for x in base:
        rs.update(float(x), phase="baseline")
    out = []
    b, p = np.asarray(base, dtype=float), np.asarray(post, dtype=float)
    for i, x in enumerate(post):
        rs.update(float(x), phase="post")
        out.append(rs.evaluate())
        assert rs.verdict == out[-1] == batch_verdict(b, p[: i + 1], ratio, statistic), i
    return out


def firsts(seq: Sequence[str]) -> dict[str, int]:
    """Each verdict and the index where it first appears."""
    found: dict[str, int] = {}
    for i, v in enumerate(seq):
        found.setdefault(v, i)
    return found


BASE = np.random.default_rng(31).normal(10, 2, 200)  # the baseline's mean: about 10


def post(mean: float, sd: float = 2.0, n: int = 800, seed: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, sd, n)


@pytest.mark.parametrize(("mean", "expected", "last"), [
    (16.5, {"insufficient_data": 0, "unchanged": 49, "elevated": 99}, "elevated"),  # above 1.5 x 10
    (15.0, {"insufficient_data": 0, "unchanged": 49}, "unchanged"),  # right on 1.5 x 10
    (13.0, {"insufficient_data": 0, "unchanged": 49, "within_threshold": 63}, "within_threshold"),
])
def test_mean_verdicts_equal_the_batch_recompute(mean: float, expected: dict[str, int], last: str) -> None:
    seen = verdicts(BASE, post(mean))
    assert firsts(seen) == expected and seen[-1] == last


def test_a_constant_recent_value_borrows_the_baseline_variance() -> None:
    """Recent values that happen to be equal get no zero-width interval: their variance is
    shrunk toward the baseline's with 10 pseudo-observations."""
    seen = verdicts(BASE, np.full(300, 16.0))
    assert firsts(seen) == {"insufficient_data": 0, "unchanged": 49, "elevated": 77}


def test_too_few_on_either_side_is_insufficient_data() -> None:
    assert set(verdicts(BASE[:MIN - 1], post(30.0, n=300))) == {"insufficient_data"}
    assert set(verdicts(BASE, post(30.0, n=MIN - 1))) == {"insufficient_data"}
    assert verdicts(BASE[:MIN], post(30.0, n=MIN))[-1] == "elevated"  # min_samples each: judged


@pytest.mark.parametrize(("sd", "expected", "last"), [
    (2.0, {"insufficient_data": 0, "unchanged": 49, "elevated": 243}, "elevated"),  # variance 4 > 2 x 1
    (1.4, {"insufficient_data": 0, "unchanged": 49}, "unchanged"),  # 1.96, about 2 x 1
    (1.0, {"insufficient_data": 0, "within_threshold": 49}, "within_threshold"),
])
def test_variance_verdicts_equal_the_batch_recompute(sd: float, expected: dict[str, int], last: str) -> None:
    base = np.random.default_rng(41).normal(0, 1, 300)
    seen = verdicts(base, np.random.default_rng(42).normal(0, sd, 600), ratio=2.0, statistic="variance")
    assert firsts(seen) == expected and seen[-1] == last


def test_the_evidence_equals_numpy() -> None:
    rs = RiskSignal(RiskRule(metric="m"), ALPHA, MIN)
    later = post(16.5, n=120)
    for x in BASE:
        rs.update(float(x), phase="baseline")
    for x in later:
        rs.update(float(x), phase="post")
    rs.evaluate()
    got = rs.to_json()
    assert got["value"] == pytest.approx(later.mean(), abs=1e-6)
    assert got["baseline"] == pytest.approx(BASE.mean(), abs=1e-6)
    assert got["ratio"] == pytest.approx(later.mean() / BASE.mean(), abs=1e-6)
    assert (got["n"], got["baseline_n"], got["verdict"]) == (120, 200, "elevated")


def test_a_revision_equals_the_revised_data() -> None:
    """A per-subject count that grows (prev -> x) replaces its earlier value; n is unchanged."""
    rs = RiskSignal(RiskRule(metric="complaints"), ALPHA, MIN)
    counts = np.zeros(100)
    for _ in counts:
        rs.update(0.0, phase="baseline")
    for i in np.random.default_rng(5).choice(100, 30):  # 30 complaints, some subjects twice
        rs.update(counts[i] + 1, phase="baseline", prev=counts[i])
        counts[i] += 1
    assert rs.base.n == 100
    assert rs.base.mean == pytest.approx(counts.mean()) and rs.base.var == pytest.approx(counts.var())


def test_an_elevated_signal_escalates_once_per_episode() -> None:
    """Escalated, it does not escalate again until a within_threshold verdict ends the episode;
    a spell of 'unchanged' does not end it."""
    rs = RiskSignal(RiskRule(metric="m"), ALPHA, MIN)
    for x in BASE:
        rs.update(float(x), phase="baseline")
    stream = np.concatenate([post(20.0, n=300), post(8.0, n=300, seed=35), post(30.0, n=300, seed=36),
                             post(5.0, n=3000, seed=33), post(40.0, n=3000, seed=34)])
    seen, opened = [], []
    for i, x in enumerate(stream):
        rs.update(float(x), phase="post")
        v = rs.assess()
        if rs.opens(v):
            opened.append(i)
        seen.append(rs.settle(v).verdict)
    changes = [(i, v) for i, v in enumerate(seen) if i == 0 or seen[i - 1] != v]
    assert changes == [(0, "insufficient_data"), (49, "elevated"), (434, "unchanged"), (693, "elevated"),
                       (1162, "unchanged"), (1462, "within_threshold"), (4771, "unchanged"), (5116, "elevated")]
    assert opened == [49, 5116]


def test_update_returns_itself_and_judges_nothing() -> None:
    rs = RiskSignal(RiskRule(metric="m"), ALPHA, MIN)
    assert rs.update(1.0, phase="baseline", t=0.0) is rs
    assert rs.update(9.0, phase="post", t=1.0) is rs
    assert rs.verdict == "insufficient_data"  # judged by evaluate(), not by update()


def test_assess_and_opens_keep_nothing() -> None:
    """The read-only half of a judgement: only `settle` (or `evaluate`) keeps a verdict."""
    rs = RiskSignal(RiskRule(metric="m"), ALPHA, MIN)
    for x in BASE:
        rs.update(float(x), phase="baseline")
    for x in post(40.0, n=300):
        rs.update(float(x), phase="post")
    assert rs.assess() == "elevated" and rs.opens("elevated")
    assert rs.verdict == "insufficient_data" and not rs.escalated
    assert rs.evaluate() == "elevated" and rs.escalated and not rs.opens("elevated")


def test_observations_that_name_their_subject_are_judged_by_subject() -> None:
    """Ten subjects, twenty observations each, in each phase: the interval reads ten units a
    phase (cluster-robust), the reported counts stay observations; the variance statistic
    keeps observations as its units."""
    rng = np.random.default_rng(5)
    mean = RiskSignal(RiskRule(metric="m", max_ratio=1.5), ALPHA, MIN)
    var = RiskSignal(RiskRule(metric="m", statistic="variance", max_ratio=2.0), ALPHA, MIN)
    sums: dict[tuple[str, int], tuple[float, int]] = {}
    for phase in ("baseline", "post"):
        for i in range(200):
            s, x = i % 10, float(rng.random() < 0.1 + 0.05 * (i % 10))
            before = sums.get((phase, s), (0.0, 0))
            sums[(phase, s)] = (before[0] + x, before[1] + 1)
            mean.update(x, phase=phase, before=before)
            var.update(x, phase=phase, before=before)
    base, post = mean._intervals_pair()
    assert (base.n, post.n) == (10, 10) and (mean.base.n, mean.post.n) == (200, 200)
    assert base.mean == pytest.approx(mean.base.mean) and post.mean == pytest.approx(mean.post.mean)
    assert mean.to_json()["n"] == 200 and not var.clustered
