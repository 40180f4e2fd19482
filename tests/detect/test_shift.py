"""Strategy shift detectors, River-style: a seeded stream goes in, and the test asserts the exact
indices where `.event` becomes non-None. The e-CUSUM's first alarm is also recomputed in one
batch with numpy (log M_t = C_t - min_{s<t} C_s), and each baseline's upper bound with scipy's
Wilson interval."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from missionwatch.detect import FollowupPressure, MixShift, NoveltyWatch

RISES = (1.5, 2.0, 3.0)
WILSON_Z = 3.09  # one-sided 99.9%, the detectors' baseline upper bound


def alarms(det: Any, stream: Iterable[Any]) -> list[int]:
    """Indices of `stream` at which `det.update(x).event` was not None."""
    return [i for i, x in enumerate(stream) if det.update(x).event is not None]


def seeded(seed: int, n: int, values: Sequence[str], p: Sequence[float]) -> list[str]:
    return [str(v) for v in np.random.default_rng(seed).choice(values, n, p=p)]


def bits(seed: int, n: int, p: float) -> list[bool]:
    return [bool(b) for b in np.random.default_rng(seed).random(n) < p]


def wilson_upper_scipy(k: int, n: int) -> float:
    level = 2 * norm.cdf(WILSON_Z) - 1  # two-sided level whose upper end is the one-sided 99.9% bound
    return float(binomtest(k, n).proportion_ci(confidence_level=level, method="wilson").high)


def first_ecusum_alarm(xs: Sequence[bool], p0: float, rises: Sequence[float], alpha: float) -> int | None:
    """The first index at which a mixture of Bernoulli e-CUSUMs (rises of p0) reaches 1/alpha,
    computed for the whole stream at once."""
    p0 = min(max(p0, 1e-9), 1 - 1e-9)
    p1 = np.minimum(p0 * np.asarray(rises), 1 - 1e-6)
    x = np.asarray(xs, dtype=bool)[:, None]
    ll = np.where(x, np.log(p1 / p0), np.log((1 - p1) / (1 - p0)))
    c = np.cumsum(ll, axis=0)
    log_m = c - np.minimum.accumulate(np.vstack([np.zeros((1, len(rises))), c[:-1]]), axis=0)
    mix = np.log(np.exp(log_m).mean(axis=1))
    hits = np.flatnonzero(mix >= math.log(1 / alpha))
    return int(hits[0]) if len(hits) else None


# ------------------------------------------------------------------- novelty
BASE_VALUES = seeded(11, 20, ["t1", "t2", "t3", "t4", "t5", "t6", "t7"], [.3, .3, .2, .1, .06, .03, .01])
LATER_VALUES = seeded(12, 200, ["t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8"],
                      [.2, .2, .2, .1, .1, .1, .05, .05])


def test_novelty_flags_each_value_unseen_in_the_baseline_once() -> None:
    w = NoveltyWatch("template", "new_template")
    assert alarms(w, BASE_VALUES) == []  # the baseline learns; it never alarms
    assert w.freeze() is w
    found = alarms(w, LATER_VALUES)
    assert sorted(set(BASE_VALUES)) == ["t1", "t2", "t3", "t4", "t5"]
    assert found == [1, 8, 73]
    assert [LATER_VALUES[i] for i in found] == ["t7", "t6", "t8"]
    oracle = [i for i, v in enumerate(LATER_VALUES) if v not in BASE_VALUES and v not in LATER_VALUES[:i]]
    assert found == oracle
    assert w.new == ["t7", "t6", "t8"] and w.status()["verdict"] == "watching"


def test_a_novelty_event_names_the_value_and_the_baseline() -> None:
    w = NoveltyWatch("action_type", "new_action_type")
    for v in ("email.send", "offer.discount"):
        w.update(v)
    w.freeze()
    assert w.update("email.send").event is None
    event = w.update("followup.schedule").event
    assert event is not None
    assert (event.code, event.detector, event.value) == ("new_action_type", "novelty:action_type",
                                                         "followup.schedule")
    assert event.evidence == {"dimension": "action_type", "baseline_values": ["email.send", "offer.discount"]}
    assert w.update("followup.schedule").event is None  # once per value; the next update clears it


def test_novelty_update_returns_itself_and_event_is_read_only() -> None:
    w = NoveltyWatch("template", "new_template").freeze()
    assert w.update("x", t=1.0) is w and w.event is not None
    with pytest.raises(AttributeError):
        w.event = None  # type: ignore[misc]


# ----------------------------------------------------------------------- mix
MIX_BASE = seeded(7, 300, ["a", "b", "c"], [0.5, 0.3, 0.2])
MIX_SHIFTED = seeded(8, 600, ["a", "b", "c"], [0.3, 0.3, 0.4])  # c's share doubles
MIX_SAME = seeded(9, 3000, ["a", "b", "c"], [0.5, 0.3, 0.2])


def _mix() -> MixShift:
    """A mix detector frozen on MIX_BASE, at alpha 1e-3 (1e-3 / 3 per category), taking every
    action as independent (the exact e-CUSUM arithmetic; tempering: tests/stats/test_dispersion)."""
    m = MixShift("action_type", 1e-3, RISES, lags=0)
    assert alarms(m, MIX_BASE) == [] and m.status()["verdict"] == "baseline"
    assert m.freeze() is m
    return m


def test_mix_shift_alarms_where_the_batch_ecusum_first_crosses() -> None:
    m = _mix()
    assert alarms(m, MIX_SHIFTED[:223]) == [222]
    event = m.event
    assert alarms(m, MIX_SHIFTED[223:]) == []  # latched after its first alarm: one event
    counts = {c: MIX_BASE.count(c) for c in "abc"}
    for c in "abc":  # each category is tested against its baseline share's Wilson upper bound
        assert m.detectors is not None and m.detectors[c].p0 == pytest.approx(wilson_upper_scipy(counts[c], 300),
                                                                              rel=1e-12)
    per_category = {c: first_ecusum_alarm([x == c for x in MIX_SHIFTED], wilson_upper_scipy(counts[c], 300),
                                          RISES, 1e-3 / 3) for c in "abc"}
    assert per_category == {"a": None, "b": None, "c": 222}
    assert event is not None and (event.code, event.detector, event.value) == ("mix_shift", "mix:action_type", "c")
    assert event.evidence["share"] == round(MIX_SHIFTED[:223].count("c") / 223, 6)
    assert event.evidence["baseline_share"] == round(64 / 300, 6)
    assert event.evidence["baseline_counts"] == counts and event.evidence["recent_actions"] == 223
    assert event.evidence["level"] == 3000.0 and event.evidence["statistic"] >= 3000.0


def test_an_unchanged_mix_does_not_alarm() -> None:
    m = _mix()
    assert m.detectors is not None
    p0 = {c: d.p0 for c, d in m.detectors.items()}
    assert alarms(m, MIX_SAME) == []
    assert [first_ecusum_alarm([x == c for x in MIX_SAME], p0[c], RISES, 1e-3 / 3) for c in "abc"] == [None] * 3


@pytest.mark.parametrize("n0", [50, 2000])
def test_a_baseline_of_a_single_value_cannot_alarm_on_the_others(n0: int) -> None:
    """A baseline that saw one template only bounds its share at 1: no share can rise above
    that, so its detector must never alarm; other templates are the novelty watch's. (The
    alternative clipped below 1 used to make it a fall detector: it alarmed at once.)"""
    m = MixShift("template", 1e-5, RISES)
    alarms(m, ["only"] * n0)
    m.freeze()
    assert m.detectors is not None and m.detectors["only"].p0 == pytest.approx(1.0)
    later = seeded(21, 20_000, ["only", "new-a", "new-b"], [0.2, 0.5, 0.3])
    assert alarms(m, later) == [] and m.status()["verdict"] == "watching"


def test_mix_shift_latches_until_rearmed_and_a_reviewed_mix_becomes_the_baseline() -> None:
    m = _mix()
    alarms(m, MIX_SHIFTED[:223])
    assert m.shifted and m.status()["verdict"] == "shifted"
    assert alarms(m, MIX_SHIFTED[223:]) == []  # 377 more, all latched
    assert m.rearm() is m and not m.shifted
    assert m.baseline == {c: MIX_SHIFTED[223:].count(c) for c in "abc"}  # what the reviewer accepted
    assert alarms(m, seeded(10, 2000, ["a", "b", "c"], [0.3, 0.3, 0.4])) == []  # the new normal


def test_a_rearm_after_fewer_than_50_latched_keeps_the_old_baseline() -> None:
    m = _mix()
    alarms(m, MIX_SHIFTED[:223])
    alarms(m, MIX_SHIFTED[223:272])  # 49 latched
    m.rearm()
    assert m.baseline == {c: MIX_BASE.count(c) for c in "abc"}
    again = seeded(13, 2000, ["a", "b", "c"], [0.3, 0.3, 0.4])
    assert m.detectors is not None
    first = first_ecusum_alarm([x == "c" for x in again], m.detectors["c"].p0, RISES, 1e-3 / 3)
    assert alarms(m, again) == [first] == [607]


@pytest.mark.parametrize(("latched", "replaced"), [(49, False), (50, True)])
def test_fifty_latched_observations_make_a_baseline(latched: int, replaced: bool) -> None:
    m, f = _mix(), _followups()
    alarms(m, MIX_SHIFTED[:223] + MIX_SHIFTED[223:223 + latched])
    alarms(f, FU_RISEN[:173 + latched])
    m.rearm()
    f.rearm()
    kept = MIX_SHIFTED[223:223 + latched]
    assert m.baseline == ({c: kept.count(c) for c in "abc"} if replaced else {c: MIX_BASE.count(c) for c in "abc"})
    assert f.baseline == ((latched, sum(FU_RISEN[173:173 + latched])) if replaced else (400, 45))


def test_mix_shift_update_returns_itself_and_event_is_read_only() -> None:
    m = MixShift("template", 1e-3, RISES)
    assert m.update("x", t=5.0) is m and m.event is None
    with pytest.raises(AttributeError):
        m.event = None  # type: ignore[misc]


# ------------------------------------------------------------------ follow-ups
FU_BASE = bits(21, 400, 0.10)
FU_RISEN = bits(22, 2000, 0.25)
FU_SAME = bits(23, 5000, 0.10)


def _followups() -> FollowupPressure:
    """A follow-up pressure detector frozen on FU_BASE, at alpha 1e-3."""
    f = FollowupPressure("age_band=65+", RISES, 1e-3)
    assert alarms(f, FU_BASE) == [] and f.status()["verdict"] == "baseline"
    assert f.freeze() is f
    return f


def test_followup_pressure_alarms_where_the_batch_ecusum_first_crosses() -> None:
    f = _followups()
    assert f.baseline == (400, sum(FU_BASE)) == (400, 45)
    assert f.p0 == pytest.approx(wilson_upper_scipy(45, 400), rel=1e-12)
    assert alarms(f, FU_RISEN[:173]) == [first_ecusum_alarm(FU_RISEN, f.p0, RISES, 1e-3)] == [172]
    event = f.event
    assert alarms(f, FU_RISEN[173:]) == []
    assert event is not None
    assert (event.code, event.detector, event.value) == ("followup_pressure", "followup:age_band=65+",
                                                         "age_band=65+")
    assert event.evidence["recent_actions"] == 173 and event.evidence["recent_followups"] == sum(FU_RISEN[:173])
    assert event.evidence["baseline_actions"] == 400 and event.evidence["baseline_followups"] == 45


def test_unchanged_followups_do_not_alarm() -> None:
    f = _followups()
    assert alarms(f, FU_SAME) == [] and first_ecusum_alarm(FU_SAME, f.p0, RISES, 1e-3) is None


def test_followup_pressure_latches_until_rearmed() -> None:
    f = _followups()
    alarms(f, FU_RISEN[:173])
    assert f.latched == [0, 0] and f.status()["verdict"] == "shifted"
    assert alarms(f, FU_RISEN[173:]) == []
    assert f.rearm() is f and f.latched is None
    assert f.baseline == (len(FU_RISEN) - 173, sum(FU_RISEN[173:]))  # the reviewed share is the new baseline
    assert alarms(f, bits(24, 3000, 0.25)) == []


def test_a_followup_rearm_after_fewer_than_50_latched_keeps_the_old_baseline() -> None:
    f = _followups()
    alarms(f, FU_RISEN[:173 + 49])
    f.rearm()
    assert f.baseline == (400, 45)
    again = bits(25, 2000, 0.25)
    assert alarms(f, again) == [first_ecusum_alarm(again, f.p0, RISES, 1e-3)] == [84]


def test_a_cohort_with_no_baseline_borrows_the_fallback() -> None:
    late = FollowupPressure("region=east", RISES, 1e-3).freeze((400, 45))
    assert late.baseline == (400, 45)
    own = FollowupPressure("region=west", RISES, 1e-3)  # a baseline of its own is kept
    alarms(own, FU_BASE[:100])
    own.freeze((400, 45))
    assert own.baseline == (100, sum(FU_BASE[:100]))
    assert alarms(late, FU_RISEN) == [172]  # the same stream, the same baseline: the same alarm


def test_followup_update_returns_itself_and_event_is_read_only() -> None:
    f = FollowupPressure("*", RISES, 1e-3)
    assert f.update(True, t=5.0) is f and f.event is None
    with pytest.raises(AttributeError):
        f.event = None  # type: ignore[misc]
