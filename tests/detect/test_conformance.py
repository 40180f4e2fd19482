"""One conformance test walks every detector: the same small interface (update,
reset, status), pickling mid-stream changes nothing, reset() equals new."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from missionwatch.detect import (
    FairnessDelta,
    FollowupPressure,
    HardLimit,
    MixShift,
    NoveltyWatch,
    RiskSignal,
)
from missionwatch.spec import FairnessRule, LimitRule, RiskRule
from missionwatch.stats.base import Detector
from missionwatch.stats.betting import BettingCS
from missionwatch.stats.cs import MSPRT
from missionwatch.stats.edetect import (
    BernoulliECusum,
    CategoricalECusum,
    PoissonECusum,
    TabularCusum,
)

rng = np.random.default_rng(3)
BITS = [bool(x) for x in rng.random(400) < 0.2]
CATS = [str(c) for c in rng.choice(["a", "b", "c", "d"], 400, p=[0.4, 0.3, 0.2, 0.1])]


def _mix_shift() -> MixShift:
    det = MixShift("action_type", 1e-3, (1.5, 2.0))
    for c in CATS[:200]:
        det.update(c)
    return det.freeze()


def _followup() -> FollowupPressure:
    det = FollowupPressure("age_band=65+", (1.5, 2.0), 1e-3)
    for b in BITS[:200]:
        det.update(b)
    return det.freeze()


def _novelty() -> NoveltyWatch:
    det = NoveltyWatch("template", "new_template")
    for c in CATS[:20]:
        det.update(c)
    return det.freeze()


# Detectors whose baseline is learnt from the stream: what their constructor alone makes.
NEW: dict[str, Callable[[], Any]] = {
    "MixShift": lambda: MixShift("action_type", 1e-3, (1.5, 2.0)),
    "FollowupPressure": lambda: FollowupPressure("age_band=65+", (1.5, 2.0), 1e-3),
    "NoveltyWatch": lambda: NoveltyWatch("template", "new_template"),
}

# (factory, feed one observation i)
CASES: dict[str, tuple[Callable[[], Any], Callable[[Any, int], object]]] = {
    "BernoulliECusum": (lambda: BernoulliECusum(0.15, (1.5, 2.0), 1e-3), lambda d, i: d.update(BITS[i])),
    "BernoulliECusum(sr)": (lambda: BernoulliECusum(0.15, (1.5, 2.0), 1e-3, kind="sr"),
                            lambda d, i: d.update(BITS[i])),
    "PoissonECusum": (lambda: PoissonECusum(0.3, (1.5, 2.0), 1e-3), lambda d, i: d.update(int(BITS[i]) * 2)),
    "CategoricalECusum": (lambda: CategoricalECusum({"a": 40, "b": 30, "c": 20, "d": 10}, 1e-3),
                          lambda d, i: d.update(CATS[i])),
    "TabularCusum": (lambda: TabularCusum(0.2, 0.4, two_sided=True), lambda d, i: d.update(float(BITS[i]))),
    "BettingCS": (lambda: BettingCS(1e-3, grid=50), lambda d, i: d.update(float(BITS[i]))),
    "MSPRT": (lambda: MSPRT(0.01), lambda d, i: d.update(float(BITS[i]), "a" if i % 3 else "b")),
    "FairnessDelta(strict)": (
        lambda: FairnessDelta(FairnessRule(metric="m", harm="both", max_gap=0.05), "age_band", 0.05, 10, 4,
                              strict=True),
        lambda d, i: (d.update(CATS[i], float(BITS[i])), d.evaluate(CATS[i]))),
    "FairnessDelta": (
        lambda: FairnessDelta(FairnessRule(metric="m", harm="both", max_gap=0.05), "age_band", 0.05, 10, 4),
        lambda d, i: (d.update(CATS[i], float(BITS[i])), d.evaluate(CATS[i]))),
    "RiskSignal": (lambda: RiskSignal(RiskRule(metric="m"), 0.05, 10),
                   lambda d, i: (d.update(float(BITS[i]), phase="baseline" if i < 150 else "post"), d.evaluate())),
    "HardLimit": (lambda: HardLimit(LimitRule(metric="m", above=0.3, min_samples=10)),
                  lambda d, i: d.update(["mission", f"c={CATS[i]}"], float(BITS[i]))),
    "MixShift": (_mix_shift, lambda d, i: d.update(CATS[i])),
    "FollowupPressure": (_followup, lambda d, i: d.update(BITS[i])),
    "NoveltyWatch": (_novelty, lambda d, i: d.update(CATS[i] + str(i % 7))),
}


def test_every_detector_is_covered() -> None:
    import missionwatch.detect as detect
    import missionwatch.stats.betting as betting
    import missionwatch.stats.cs as cs
    import missionwatch.stats.edetect as edetect

    classes = {c for m in (detect, edetect, betting, cs) for c in vars(m).values()
               if isinstance(c, type) and issubclass(c, Detector) and not c.__name__.startswith("_")
               and c is not Detector}
    covered = {type(factory()) for factory, _ in CASES.values()}
    assert classes == covered, classes ^ covered


@pytest.mark.parametrize("name", sorted(CASES))
def test_detector_conformance(name: str) -> None:
    factory, feed = CASES[name]
    det = factory()
    assert isinstance(det, Detector)
    fresh = json.dumps(det.status(), sort_keys=True)  # JSON-ready
    for i in range(150):
        feed(det, i)
    copy = pickle.loads(pickle.dumps(det))
    assert json.dumps(copy.status(), sort_keys=True) == json.dumps(det.status(), sort_keys=True)
    for i in range(150, 400):  # the copy goes on exactly as the original
        assert _seen(feed(det, i), det) == _seen(feed(copy, i), copy)
    assert json.dumps(copy.status(), sort_keys=True) == json.dumps(det.status(), sort_keys=True)
    assert json.dumps(det.status(), sort_keys=True) != fresh  # it saw something
    det.reset()  # back to what the constructor made (a frozen baseline is state, and goes too)
    assert json.dumps(det.status(), sort_keys=True) == json.dumps(NEW.get(name, factory)().status(),
                                                                  sort_keys=True)


def _seen(result: object, det: object) -> str:
    """What a feed returned, with the detector itself (update returns self) named, not its address."""
    parts = result if isinstance(result, tuple) else (result,)
    return repr(tuple("self" if p is det else p for p in parts))
