"""Hard limits, River-style: a seeded stream goes in and the test asserts the exact update on
which `.breaches` names each scope; the crossing is recomputed in one batch with numpy (running
means by cumulative sums). No statistics: a point estimate past the line, from min_samples on,
once per scope."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from missionwatch.detect import HardLimit, LimitBreach
from missionwatch.spec import LimitRule


def crossings(hl: HardLimit, stream: Sequence[tuple[list[str], float]]) -> list[tuple[int, LimitBreach]]:
    """Each (index, breach) the stream's updates reported."""
    return [(i, b) for i, (scopes, x) in enumerate(stream) for b in hl.update(scopes, x).breaches]


def first_crossing(xs: np.ndarray, *, above: float | None = None, below: float | None = None,
                   min_samples: int) -> int | None:
    """The first index whose running mean is past the limit with at least min_samples values."""
    n = np.arange(1, len(xs) + 1)
    mean = np.cumsum(xs) / n
    past = (mean > above) if above is not None else (mean < below)
    hits = np.flatnonzero(past & (n >= min_samples))
    return int(hits[0]) if len(hits) else None


RATES = np.concatenate([np.random.default_rng(51).random(100) < 0.2,
                        np.random.default_rng(52).random(400) < 0.6]).astype(float)


def test_a_limit_breaches_on_the_update_that_crosses_it_once() -> None:
    hl = HardLimit(LimitRule(metric="complaint_rate", above=0.3, min_samples=30))
    found = crossings(hl, [(["mission"], x) for x in RATES])
    i = first_crossing(RATES, above=0.3, min_samples=30)
    assert [j for j, _ in found] == [i] == [131]
    b = found[0][1]
    assert b == LimitBreach("mission", pytest.approx(RATES[:132].mean()), 132)  # type: ignore[arg-type]
    assert b.value > 0.3 >= RATES[:131].mean()
    assert hl.status() == {"detector": "limit:complaint_rate", "breached": ["mission"],
                           "values": {"mission": round(RATES.mean(), 6)}}


@pytest.mark.parametrize("min_samples", [1, 30, 200])
def test_nothing_is_judged_before_min_samples(min_samples: int) -> None:
    hl = HardLimit(LimitRule(metric="m", above=0.5, min_samples=min_samples))
    assert [i for i, _ in crossings(hl, [(["mission"], 1.0)] * 300)] == [min_samples - 1]


def test_a_below_limit_and_the_line_itself() -> None:
    below = HardLimit(LimitRule(metric="renewal_rate", below=0.5, min_samples=30))
    xs = np.concatenate([RATES[100:], np.zeros(200)])  # high, then nothing
    assert [i for i, _ in crossings(below, [(["mission"], x) for x in xs])] == [
        first_crossing(xs, below=0.5, min_samples=30)] == [494]
    on_the_line = HardLimit(LimitRule(metric="m", above=0.5, min_samples=30))
    assert crossings(on_the_line, [(["mission"], x) for x in [0.0, 1.0] * 100]) == []  # 0.5 is not above 0.5
    assert on_the_line.stats["mission"].mean == 0.5 and not on_the_line.breached


def test_revisions_move_the_mean_without_adding_samples() -> None:
    """A per-subject count revised prev -> prev + 1 (a subject's second complaint)."""
    hl = HardLimit(LimitRule(metric="complaint_rate", scope="cohort", above=0.25, min_samples=40))
    counts = np.zeros(40)
    assert crossings(hl, [(["age_band=65+"], 0.0)] * 40) == []
    found = []
    for k, s in enumerate(np.random.default_rng(53).choice(40, 30)):
        found += [(k, b) for b in hl.update(["age_band=65+"], counts[s] + 1, prev=counts[s]).breaches]
        counts[s] += 1
    totals = np.arange(1, 31)  # complaints after each revision, over 40 subjects
    assert [k for k, _ in found] == [int(np.flatnonzero(totals / 40 > 0.25)[0])] == [10]
    assert found[0][1] == LimitBreach("age_band=65+", 11 / 40, 40)


def test_each_scope_breaches_once_on_its_own_crossing() -> None:
    """The mission and each cohort cross on their own updates, each once, even after dipping
    back under the line and rising again."""
    rng = np.random.default_rng(54)
    cohorts = rng.choice(["age_band=65+", "age_band=35-49"], 1200, p=[0.3, 0.7])
    high_65 = rng.random(1200) < np.where(cohorts == "age_band=65+", 0.5, 0.1)
    later = np.arange(1200) >= 600  # 35-49 rises in the second half; then everyone falls
    xs = np.where(later & (cohorts == "age_band=35-49"), rng.random(1200) < 0.7, high_65).astype(float)
    xs = np.concatenate([xs, np.zeros(1000), np.ones(1000)])  # every scope falls under the line, and rises
    cohorts = np.concatenate([cohorts, cohorts[:1000], cohorts[:1000]])
    hl = HardLimit(LimitRule(metric="m", scope="cohort", above=0.3, min_samples=50))
    found = crossings(hl, [(["mission", str(c)], float(x)) for c, x in zip(cohorts, xs, strict=True)])
    expected = []
    for scope in ("mission", "age_band=65+", "age_band=35-49"):
        mine = np.ones(len(xs), bool) if scope == "mission" else cohorts == scope
        j = first_crossing(xs[mine], above=0.3, min_samples=50)
        assert j is not None
        expected.append((int(np.flatnonzero(mine)[j]), scope, j + 1))
    assert sorted((i, b.scope, b.n) for i, b in found) == sorted(expected)
    assert sorted(expected) == [(126, "age_band=65+", 50), (717, "mission", 718), (879, "age_band=35-49", 602)]
    for scope in ("mission", "age_band=65+", "age_band=35-49"):
        mine = np.ones(len(xs), bool) if scope == "mission" else cohorts == scope
        dipped = xs[:2200][mine[:2200]].mean()
        assert dipped < 0.3 < xs[mine].mean() == pytest.approx(hl.stats[scope].mean)


def test_update_returns_itself_and_breaches_are_read_only() -> None:
    hl = HardLimit(LimitRule(metric="m", above=0.5, min_samples=1))
    assert hl.update(["mission"], 1.0, t=0.0) is hl
    assert hl.breaches == (LimitBreach("mission", 1.0, 1),)
    assert hl.update(["mission"], 1.0, t=1.0).breaches == ()  # only the update that crossed names it
    with pytest.raises(AttributeError):
        hl.breaches = ()  # type: ignore[misc]


# ------------------------------------------------------------ totals (aggregate = sum, count)
AMOUNTS = np.round(np.random.default_rng(55).gamma(2.0, 40.0, 600), 2)  # refunds, about 80 each


def test_a_limit_on_a_sum_breaches_on_the_update_that_takes_the_total_past_it() -> None:
    """No min_samples wait: a total is exact from the first observation."""
    hl = HardLimit(LimitRule(metric="refund_total", above=20_000.0, min_samples=500), "sum")
    found = crossings(hl, [(["mission"], float(x)) for x in AMOUNTS])
    i = int(np.flatnonzero(np.cumsum(AMOUNTS) > 20_000.0)[0])
    assert [j for j, _ in found] == [i] == [248] and i + 1 < 500
    assert found[0][1] == LimitBreach("mission", pytest.approx(AMOUNTS[:i + 1].sum()), i + 1)  # type: ignore[arg-type]
    assert AMOUNTS[:i].sum() <= 20_000.0 < found[0][1].value
    assert hl.status() == {"detector": "limit:refund_total", "breached": ["mission"],
                           "values": {"mission": round(float(AMOUNTS.sum()), 6)}}
    on_the_line = HardLimit(LimitRule(metric="m", above=3.0), "sum")
    assert crossings(on_the_line, [(["mission"], 1.0)] * 3) == []  # 3 is not above 3
    assert [i for i, _ in crossings(on_the_line, [(["mission"], 1.0)])] == [0]


def test_a_limit_on_a_count_counts_per_cohort_and_breaches_each_once() -> None:
    """A count with decisions: 1 for a matching decision, 0 otherwise; each cohort crosses on
    its own 201st matching action."""
    rng = np.random.default_rng(56)
    cohorts = rng.choice(["age_band=65+", "age_band=35-49"], 3000, p=[0.2, 0.8])
    hits = (rng.random(3000) < np.where(cohorts == "age_band=65+", 0.5, 0.1)).astype(float)
    hl = HardLimit(LimitRule(metric="escalated", scope="cohort", above=200), "count")
    found = crossings(hl, [(["mission", str(c)], float(x)) for c, x in zip(cohorts, hits, strict=True)])
    expected = []
    for scope in ("mission", "age_band=65+", "age_band=35-49"):
        mine = np.ones(len(hits), bool) if scope == "mission" else cohorts == scope
        j = int(np.flatnonzero(np.cumsum(hits[mine]) > 200)[0])
        expected.append((int(np.flatnonzero(mine)[j]), scope, j + 1))
    assert sorted((i, b.scope, b.n) for i, b in found) == sorted(expected)
    assert all(b.value == 201 for _, b in found)
    assert sorted(expected) == [(1102, "mission", 1103), (2203, "age_band=65+", 412),
                                (2520, "age_band=35-49", 2051)]
    assert hl.status()["values"] == {"age_band=35-49": hits[cohorts == "age_band=35-49"].sum(),
                                     "age_band=65+": hits[cohorts == "age_band=65+"].sum(), "mission": hits.sum()}


def test_a_revision_moves_a_total_without_adding_an_observation() -> None:
    hl = HardLimit(LimitRule(metric="refund_total", above=100.0), "sum")
    assert crossings(hl, [(["mission"], 40.0), (["mission"], 50.0)]) == []
    assert hl.update(["mission"], 60.0, prev=40.0).breaches == (LimitBreach("mission", 110.0, 2),)
    hl.update(["mission"], 0.0, prev=60.0)  # revised back down: the total follows, the breach stands
    assert hl.stats["mission"].total == 50.0 and hl.stats["mission"].n == 2 and hl.breached == {"mission"}
    floor = HardLimit(LimitRule(metric="net", below=-50.0), "sum")  # a sum of a signed attribute
    assert [i for i, _ in crossings(floor, [(["mission"], x) for x in (-20.0, 10.0, -30.0, -20.0)])] == [3]
