"""The e-detectors' shortcuts answer exactly what their definitions do: `above` and `alarm`
skip the log-mean-exp only where its value cannot matter, and `step` is `update` then `alarm`."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from missionwatch.stats.edetect import BernoulliECusum, _log_mean_exp

log_ms = st.lists(st.one_of(st.floats(-50.0, 50.0), st.floats(-1e12, 1e12), st.just(-math.inf),
                            st.just(0.0), st.floats(0.9, 1.5)), min_size=1, max_size=80)
levels = st.one_of(st.just(0.0), st.floats(-5.0, 30.0), st.floats(-1e10, 1e10))


def _det(log_m: list[float]) -> BernoulliECusum:
    det = BernoulliECusum(0.2, [1.5] * len(log_m), 0.01)
    det._log_m = list(log_m)
    return det


@settings(max_examples=2000, deadline=None)
@given(log_ms, levels)
def test_above_is_its_definition(log_m: list[float], level: float) -> None:
    assert _det(log_m).above(level) == (max(log_m) > level and _log_mean_exp(log_m) > level)


@settings(max_examples=500, deadline=None)
@given(log_ms, st.floats(1e-9, 0.9))
def test_alarm_is_its_definition(log_m: list[float], alpha: float) -> None:
    det = _det(log_m)
    det.alpha = alpha
    level = math.log(1.0 / alpha)
    assert det.alarm == (max(log_m) >= level and _log_mean_exp(log_m) >= level)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=200), st.floats(0.01, 0.6),
       st.lists(st.floats(1.05, 4.0), min_size=1, max_size=4), st.sampled_from(["cusum", "sr"]),
       st.floats(1.0, 3.0))
def test_step_is_update_then_alarm(xs: list[bool], p0: float, rises: list[float], kind: str, phi: float) -> None:
    one = BernoulliECusum(p0, rises, 0.01, kind=kind, phi=phi)  # type: ignore[arg-type]
    two = BernoulliECusum(p0, rises, 0.01, kind=kind, phi=phi)  # type: ignore[arg-type]
    for x in xs:
        alarmed = one.step(x)
        two.update(x)
        assert alarmed == two.alarm
        assert one._log_m == two._log_m and one.n == two.n
        assert two.above(0.0) == (max(two._log_m) > 0.0 and two.log_statistic > 0.0)


def test_above_near_the_margin() -> None:
    """Just past and just short of the shortcut's bound (level + log n + 1/8), and at the level."""
    for n in (1, 2, 3, 5, 64, 65):
        for level in (0.0, 11.5):
            edge = level + math.log(n) + 0.125
            for top in (edge, math.nextafter(edge, math.inf), math.nextafter(edge, -math.inf), level,
                        math.nextafter(level, math.inf), level + math.log(n)):
                for rest in (-math.inf, top - 40.0, top):
                    log_m = [top] + [rest] * (n - 1)
                    want = max(log_m) > level and _log_mean_exp(log_m) > level
                    assert _det(log_m).above(level) == want
