"""Strategy shift: what the agent does now against what it did in its baseline.

- `NoveltyWatch`: a template, action type or cohort never seen in the baseline
  is a deterministic shift event, once per new value.
- `MixShift`: e-CUSUM rise detectors on the share of each action type or
  template, against the upper bound of its baseline share (see stats.edetect).
  Guarantee: on an unchanged mission whose true shares are within their
  baseline bounds, at least 1/alpha actions between false alarms on average.
- `FollowupPressure`: an e-CUSUM on the share of a cohort's actions that are
  follow-ups, against that cohort's baseline share, mixed over relative rises.

Actions are not independent draws: a contact yields several actions in one template, an
agent sends bursts. Both detectors therefore estimate their stream's design effect phi
(its long-run variance over the binomial one, from autocorrelations up to
stats.dispersion.LAGS actions apart), widen the baseline's bound to the effective sample
size n / phi and temper every likelihood ratio by 1 / phi (a quasi-likelihood CUSUM).
Assumption: actions further apart than LAGS are independent given the mission's
subjects. What that does not cover, waves of one template thousands of actions long or a
mix that follows the hour of the day, the baseline has to span (README, "What the
statistics assume").

After an alarm a detector latches (one escalation, not one per action) until a
review re-arms it; what it saw while latched becomes its new baseline, since the
reviewer accepted it.
"""

from __future__ import annotations

import math
import sys
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..codes import EscalationCode
from ..stats.base import Detector
from ..stats.cs import wilson_upper
from ..stats.dispersion import LAGS, Dispersion
from ..stats.edetect import BernoulliECusum

__all__ = ["FollowupPressure", "Marks", "MixShift", "NoveltyWatch", "ShiftEvent"]


@dataclass(frozen=True)
class ShiftEvent:
    code: EscalationCode
    detector: str
    value: str
    evidence: dict[str, Any] = field(default_factory=dict)


class NoveltyWatch(Detector):
    """Values of one dimension (templates, action types, a cohort attribute) seen in the baseline."""

    __slots__ = ("_event", "code", "dimension", "frozen", "known", "new")

    def __init__(self, dimension: str, code: EscalationCode) -> None:
        self.dimension = dimension
        self.code = code
        self._reset()

    def _reset(self) -> None:
        self.known: frozenset[str] = _NOTHING
        """The values seen: one frozenset shared by every watch that saw the same (`_shared`)."""
        self.frozen = False
        self.new: list[str] = _NO_NEW  # shared while empty: never appended to, replaced by a longer list
        self._event: ShiftEvent | None = None

    @property
    def event(self) -> ShiftEvent | None:
        """The shift the last update revealed, if any."""
        return self._event

    def update(self, value: str, t: float | None = None) -> NoveltyWatch:
        self._event = None
        if value in self.known:
            return self
        value = sys.intern(value)  # one copy of each value, whatever the missions
        self.known = _shared(self.known | {value})
        if not self.frozen:
            return self
        self.new = [*self.new, value]  # a new list (new values are rare): the shared empty one never changes
        self._event = ShiftEvent(self.code, f"novelty:{self.dimension}", value,
                                 {"dimension": self.dimension, "baseline_values": sorted(self.known - {value})})
        return self

    def freeze(self) -> NoveltyWatch:
        self.frozen = True
        return self

    def status(self) -> dict[str, Any]:
        return {"detector": f"novelty:{self.dimension}", "known": sorted(self.known), "new": list(self.new),
                "verdict": "watching" if self.frozen else "baseline"}


_NOTHING: frozenset[str] = frozenset()
"""The values a watch that saw none knows: one empty set for all (`frozenset()` makes a new one)."""
_NO_NEW: list[str] = []
"""`NoveltyWatch.new` while it is empty (never changed)."""
_NO_COUNTS: Counter[str] = Counter()
"""`MixShift.recent` before the mix is frozen (never changed)."""
_KNOWN: dict[frozenset[str], frozenset[str]] = {}
"""One copy of each set of values novelty watches know: the missions of a spec mostly see the same."""


def _shared(known: frozenset[str]) -> frozenset[str]:
    found = _KNOWN.get(known)
    if found is None:
        if len(_KNOWN) >= 4096:  # bounded, whatever the traffic names
            _KNOWN.clear()
        found = _KNOWN[known] = known
    return found


class MixShift(Detector):
    """The mix of one categorical dimension (action types or templates).

    One rise detector per baseline category (is its share rising above the
    baseline's upper bound?), each at alpha / categories, so the mix as a whole
    keeps the false-alarm budget. A category never seen in the baseline is the
    NoveltyWatch's business.
    """

    __slots__ = ("_event", "alpha", "baseline", "detectors", "dimension", "dispersion", "lags", "latched",
                 "recent", "recent_n", "rises")

    def __init__(self, dimension: str, alpha: float, rises: Sequence[float], lags: int = LAGS) -> None:
        """`lags`: how far apart actions may depend on each other (stats.dispersion); 0 takes
        every action as independent (design effect 1)."""
        self.dimension = dimension
        self.alpha = alpha
        self.rises = tuple(rises)
        self.lags = lags
        self._reset()

    def _reset(self) -> None:
        self.baseline: Counter[str] = Counter()
        self.detectors: dict[str, BernoulliECusum] | None = None
        self.latched: Counter[str] | None = None
        self._event: ShiftEvent | None = None
        self.recent: Counter[str] = _NO_COUNTS  # until frozen (`freeze` makes its own): shared, never counted in
        self.recent_n = 0
        self.dispersion = Dispersion(self.lags)

    @property
    def shifted(self) -> bool:
        return self.latched is not None

    @property
    def event(self) -> ShiftEvent | None:
        """The shift the last update revealed, if any."""
        return self._event

    def update(self, value: str, t: float | None = None) -> MixShift:
        self._event = self._observe(value)
        self.dispersion.add(value)  # after the detectors: the design effect they use is predictable
        return self

    def _observe(self, value: str) -> ShiftEvent | None:
        if self.detectors is None:
            if value not in self.baseline:
                value = sys.intern(value)  # one copy of each category, whatever the missions
            self.baseline[value] += 1
            return None
        if self.latched is not None:
            self.latched[value] += 1
            return None
        self.recent[value] += 1
        self.recent_n += 1
        phi = self.dispersion.factor()
        fired = None
        for cat, det in self.detectors.items():
            if det.phi != phi:
                det.temper(phi)
            if det.step(cat == value) and fired is None:
                fired = cat
        if fired is None:
            return None
        return self._shifted(fired, phi)

    def _shifted(self, fired: str, phi: float) -> ShiftEvent:
        """The shift event of `fired`'s alarm; the mix latches."""
        assert self.detectors is not None
        det = self.detectors[fired]
        n0 = sum(self.baseline.values())
        self.latched = Counter()
        return ShiftEvent("mix_shift", f"mix:{self.dimension}", fired, {
            "what": self.dimension, "share": round(self.recent[fired] / self.recent_n, 6),
            "baseline_share": round(self.baseline[fired] / n0, 6),
            "baseline_upper": round(det.p0, 6),
            "statistic": round(det.statistic, 3), "level": round(1 / det.alpha, 3),
            "recent_actions": self.recent_n, "baseline_counts": dict(sorted(self.baseline.items())),
            "design_effect": round(phi, 3),
        })

    def freeze(self) -> MixShift:
        n0 = sum(self.baseline.values())
        cats = sorted(self.baseline)
        a = self.alpha / max(len(cats), 1)
        phi = self.dispersion.factor()
        b = self.dispersion.phi  # the baseline's bounds: over n0 / b effective actions
        self.detectors = {c: BernoulliECusum(wilson_upper(self.baseline[c] / b, n0 / b), self.rises, a, phi=phi)
                          for c in cats}
        self.recent = Counter()
        self.recent_n = 0
        return self

    def rearm(self) -> MixShift:
        if self.latched is not None:
            if sum(self.latched.values()) >= 50:
                self.baseline = self.latched
            self.latched = None
            self.freeze()
        return self

    def status(self) -> dict[str, Any]:
        dets = self.detectors or {}
        top = max(dets.items(), key=lambda kv: kv[1].statistic, default=None)
        return {
            "detector": f"mix:{self.dimension}",
            "verdict": "shifted" if self.latched is not None else ("watching" if dets else "baseline"),
            "statistic": round(top[1].statistic, 3) if top else None,
            "level": round(1 / top[1].alpha, 3) if top else None,
            "leading": top[0] if top else None,
            "design_effect": round(self.dispersion.last, 3),
        }


class FollowupPressure(Detector):
    """Share of a cohort's actions that are follow-ups, against its baseline share.

    `dispersion`: the design effect of the mission's follow-up indicator, shared by its
    follow-up detectors (the mission keeps it and feeds it; every cohort is assumed to cluster
    alike); None assumes independent actions."""

    __slots__ = ("_event", "alpha", "cohort", "detector", "dispersion", "k0", "latched", "marks", "n0",
                 "passive", "phi0", "recent", "rise_t", "rises")

    def __init__(self, cohort: str, rises: Sequence[float], alpha: float,
                 dispersion: Dispersion | None = None, *, passive: bool = False) -> None:
        self.cohort = cohort
        self.rises = tuple(rises)
        self.alpha = alpha
        self.dispersion = dispersion
        self.passive = passive
        """Counts (for naming a cause, detect/cause.py) but never tests, so never alarms."""
        self._reset()

    def _reset(self) -> None:
        self.n0 = 0
        self.k0 = 0
        self.phi0 = 1.0
        self.detector: BernoulliECusum | None = None
        self.latched: list[int] | None = None
        # actions, follow-ups since the detector last armed, and their marks: until it arms
        # (`freeze`, which makes its own), one pair and one Marks shared by every unarmed detector,
        # only ever read (`_observe` counts into them only once armed)
        self.recent = _UNARMED
        self.marks = _NO_MARKS
        self.rise_t: float | None = None
        """When the statistic last stood below 1: about where a rise began (None: it stands
        below 1 now)."""
        self._event: ShiftEvent | None = None

    @property
    def p0(self) -> float:
        """The baseline share the detector tests rises against: its 99.9% upper bound (over the
        baseline's effective sample size, n / phi0)."""
        return wilson_upper(self.k0 / self.phi0, self.n0 / self.phi0)

    @property
    def event(self) -> ShiftEvent | None:
        """The shift the last update revealed, if any."""
        return self._event

    @property
    def baseline(self) -> tuple[int, int]:
        """Actions and follow-ups of the baseline."""
        return self.n0, self.k0

    def update(self, followup: bool, t: float | None = None) -> FollowupPressure:
        """`t`: a clock shared by a mission's follow-up detectors that never goes back (the
        monitor passes its action count); None counts this detector's own updates."""
        self._event = self._observe(followup, float(self.recent[0]) if t is None else t)
        return self

    def _observe(self, followup: bool, t: float) -> ShiftEvent | None:
        if self.detector is None:
            self.n0 += 1
            self.k0 += followup
            return None
        if self.latched is not None:
            self.latched[0] += 1
            self.latched[1] += followup
            return None
        self.marks.note(t, self.recent)
        self.recent[0] += 1
        self.recent[1] += followup
        if self.passive:
            return None
        phi = self._phi()
        if phi != self.detector.phi:
            self.detector.temper(phi)
        det = self.detector.update(followup)
        if not det.above(0.0):  # strictly above 1 is evidence (a ratio stuck at 1 is none)
            self.rise_t = None
        elif self.rise_t is None:
            self.rise_t = t
        if not det.alarm:
            return None
        self.latched = [0, 0]
        share = self.recent[1] / self.recent[0]
        return ShiftEvent("followup_pressure", f"followup:{self.cohort}", self.cohort, {
            "cohort": self.cohort, "share": round(share, 6),
            "baseline_share": round(self.k0 / self.n0 if self.n0 else self.p0, 6),
            "baseline_upper": round(self.p0, 6),
            "recent_actions": self.recent[0], "recent_followups": self.recent[1],
            "baseline_actions": self.n0, "baseline_followups": self.k0,
            "statistic": round(det.statistic, 3), "level": round(1 / self.alpha, 3),
            "design_effect": round(phi, 3),
        })

    def _phi(self) -> float:
        return self.dispersion.factor() if self.dispersion is not None else 1.0

    @property
    def design_effect(self) -> float:
        """The design effect as last estimated (1 without a dispersion)."""
        return self.dispersion.last if self.dispersion is not None else 1.0

    @property
    def watching(self) -> bool:
        return self.detector is not None and self.latched is None

    @property
    def base_share(self) -> float:
        """The baseline's follow-up share (its upper bound when it had no follow-ups at all, so
        a lift stays finite)."""
        return self.k0 / self.n0 if self.n0 and self.k0 else self.p0

    def since(self, t: float) -> tuple[int, int]:
        """Actions and follow-ups since about event time t (within `Marks.every` updates)."""
        n, k = self.marks.before(t)
        return self.recent[0] - n, self.recent[1] - k

    def latch(self) -> FollowupPressure:
        """Stop watching until a review re-arms it, as after an alarm (its rise was reported
        as part of another detector's escalation)."""
        if self.latched is None:
            self.latched = [0, 0]
        return self

    def summary(self, t: float) -> dict[str, Any]:
        """Its share since event time t against its baseline, for an escalation's evidence."""
        det = self.detector
        n, k = self.since(t)
        return {"cohort": self.cohort, "share": round(k / n, 6) if n else None,
                "baseline_share": round(self.k0 / self.n0, 6) if self.n0 else None,
                "baseline_upper": round(self.p0, 6),
                "lift": round(k / n / self.base_share, 6) if n and self.base_share else None,
                "actions": n, "followups": k, "recent_actions": self.recent[0],
                "recent_followups": self.recent[1], "baseline_actions": self.n0, "baseline_followups": self.k0,
                "statistic": round(det.statistic, 3) if det else None, "design_effect": round(self.design_effect, 3)}

    def freeze(self, fallback: tuple[int, int] | None = None) -> FollowupPressure:
        if self.n0 == 0 and fallback is not None:
            self.n0, self.k0 = fallback
        phi = self._phi()
        self.phi0 = self.dispersion.phi if self.dispersion is not None else 1.0
        self.detector = BernoulliECusum(self.p0, self.rises, self.alpha, phi=phi)
        self.recent = [0, 0]
        self.marks = Marks()
        self.rise_t = None
        return self

    def rearm(self) -> FollowupPressure:
        if self.latched is not None:
            if self.latched[0] >= 50:
                self.n0, self.k0 = self.latched
            self.latched = None
            self.freeze()
        return self

    def status(self) -> dict[str, Any]:
        det = self.detector
        share = self.recent[1] / self.recent[0] if self.recent[0] else math.nan
        return {
            "detector": f"followup:{self.cohort}",
            "verdict": "shifted" if self.latched is not None else ("watching" if det else "baseline"),
            "statistic": round(det.statistic, 3) if det else None,
            "level": round(1 / self.alpha, 3),
            "share": round(share, 6) if math.isfinite(share) else None,
            "baseline_share": round(self.p0, 6),
        }


_UNARMED = [0, 0]
"""`FollowupPressure.recent` of the detectors not armed yet (never changed)."""


class Marks:
    """Cumulative (actions, follow-ups) noted every `every` updates with their event time,
    the latest `kept`: counts since a past time, in bounded memory."""

    __slots__ = ("_marks",)
    every = 32
    kept = 512

    def __init__(self) -> None:
        self._marks: deque[tuple[float, int, int]] | None = None
        """Made at the first mark (an empty deque is most of a kilobyte, and most cohorts'
        detectors of most missions never arm)."""

    def note(self, t: float, counts: list[int]) -> None:
        if counts[0] % self.every == 0:
            if self._marks is None:
                self._marks = deque(maxlen=self.kept)
            self._marks.append((t, counts[0], counts[1]))

    def before(self, t: float) -> tuple[int, int]:
        """The counts as they stood at the latest mark not after t (the oldest kept if every
        mark is later: the window then reaches as far back as memory does)."""
        if self._marks is None:
            return (0, 0)
        found = None
        for mt, n, k in reversed(self._marks):
            if mt <= t:
                found = (n, k)
                break
        if found is None:  # every mark is later: from the start, or the oldest mark kept
            full = len(self._marks) == self.kept
            return (self._marks[0][1], self._marks[0][2]) if full else (0, 0)
        return found


_NO_MARKS = Marks()
"""`FollowupPressure.marks` of the detectors not armed yet (never noted in)."""
