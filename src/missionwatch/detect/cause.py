"""One escalation for one cause.

A rise of follow-ups on one segment shows in every cohort that overlaps it (each age
band, each region, the whole mission holds some of that segment), and each of their
detectors would alarm on its own: a person would see a dozen escalations for one
change. `one_cause` turns the alarms of one record into one event that names the
cohort which explains the rise best and lists the others as related.

Method. The window is the time since the earliest of the alarmed detectors, and of those
holding evidence of a rise (statistic at least 1), last had its statistic below 1: about
where the rise began, seen by every cohort it touches. Every cohort's follow-up share over that
window is set against its own baseline share. Candidates are ranked by a cautious lift
(the 99.9% lower bound of the window's share over the 99.9% upper bound of the
baseline's). The cause is the
first candidate that has surely risen (cautious lift above 1), and surely more than its
complement (the other values of its attribute, pooled: disjoint from it) at the most. A
rise on one segment lifts every age band, but no other segment; a rise everywhere lifts
every complement as much, so no cohort qualifies and the whole mission is named.

Intersections ('segment+tenure_band=smb+m4-12', see the spec's cohorts) take part in the
naming, never in the alarms (their detectors count, but do not test: more, smaller
detectors alarm sooner on luck, and a name drawn from a lucky window is a wrong name). They
are tried last, so the cohort named is the broadest that explains the rise; an
intersection is named when no plain cohort does, and must also have risen surely more than
the rest of each cohort it joins (the other tenure bands of smb; the other segments in
m4-12): a rise of a whole segment lifts each of its tenure bands alike. A rise confined to
one intersection names the first cohort it joins that surely rose more than its
complement, with the intersection related (its lift shown): coarser than the rise, never
narrower. The
bounds are one-sided 95%: naming the cause is an attribution, not a verdict. When the
window is too short for the bounds to tell, the whole mission is named, with the cohorts
that rose (the cause among them, with its lift) as related: never a wrong cohort on a
guess. (Point estimates were tried instead: they named a single cohort for a
mission-wide rise in 3 of 3 simulated missions.) The cohorts that surely rose in the
window, and those that alarmed, are related: they are latched with the cause and do not
escalate again for it. A later rise elsewhere, with no evidence in this window, still
escalates on its own.
"""

from __future__ import annotations

import math
from typing import Any

from ..stats.cs import wilson_upper
from .shift import FollowupPressure, ShiftEvent

__all__ = ["WHOLE", "one_cause"]

WHOLE = "*"
"""The follow-up detector of the whole mission."""
MIN_ACTIONS = 30
"""A cohort with fewer actions in the window is not a candidate."""


Z = 1.645
"""One-sided 95% bounds: naming a cause is an attribution, not a verdict with a guarantee."""


def _cautious_lift(n: int, k: int, n0: int, k0: int, phi: float = 1.0) -> float:
    """The lower bound of the share k/n over the upper bound of the baseline share k0/n0
    (0 if undefined), each over n / phi effective actions (phi: the design effect): above 1,
    the share has surely risen."""
    if n <= 0 or n0 <= 0:
        return 0.0
    return (1.0 - wilson_upper((n - k) / phi, n / phi, Z)) / wilson_upper(k0 / phi, n0 / phi, Z)


def _bold_lift(n: int, k: int, n0: int, k0: int, phi: float = 1.0) -> float:
    """The upper bound of the share k/n over the lower bound of the baseline share (inf if
    undefined): the most it can have risen."""
    if n <= 0 or n0 <= 0:
        return math.inf
    low0 = 1.0 - wilson_upper((n0 - k0) / phi, n0 / phi, Z)
    return wilson_upper(k / phi, n / phi, Z) / low0 if low0 > 0 else math.inf


def _lifts(detectors: dict[str, FollowupPressure], t: float) -> dict[str, float]:
    out = {}
    for key, d in detectors.items():
        n, k = d.since(t)
        if key != WHOLE and n >= MIN_ACTIONS:
            out[key] = _cautious_lift(n, k, d.n0, d.k0, d.design_effect)
    return out


def _pooled(detectors: dict[str, FollowupPressure], keys: list[str], t: float) -> tuple[int, int, int, int]:
    """Window and baseline counts (n, k, n0, k0) of the cohorts `keys`, pooled."""
    n = k = n0 = k0 = 0
    for other in keys:
        d = detectors[other]
        dn, dk = d.since(t)
        n, k, n0, k0 = n + dn, k + dk, n0 + d.n0, k0 + d.k0
    return n, k, n0, k0


def _beats_siblings(detectors: dict[str, FollowupPressure], key: str, lift: float, t: float,
                    parts: dict[str, tuple[str, ...]]) -> bool:
    """For an intersection: whether it surely rose more than the rest of each cohort it joins
    could have (a rise of a whole segment lifts each of its tenure bands alike: the segment
    explains it, not one of them). True for a plain cohort."""
    dim, phi = key.split("=", 1)[0], detectors[key].design_effect
    for part in parts.get(key, ()):
        rest = [o for o in detectors if o != key and o.split("=", 1)[0] == dim and part in parts.get(o, ())]
        if lift <= _bold_lift(*_pooled(detectors, rest, t), phi):
            return False
    return True


def _name(detectors: dict[str, FollowupPressure], lifts: dict[str, float], t: float,
          parts: dict[str, tuple[str, ...]]) -> str | None:
    """The cohort that explains the rise (see the module), or None: the whole mission."""
    ranked = sorted(lifts, key=lambda k: (k in parts, -lifts[k], k))  # intersections last
    for k in ranked:
        dim = k.split("=", 1)[0]
        complement = [o for o in detectors if o != k and o.split("=", 1)[0] == dim]
        if lifts[k] > max(1.0, _bold_lift(*_pooled(detectors, complement, t), detectors[k].design_effect)) \
                and _beats_siblings(detectors, k, lifts[k], t, parts):
            return k
    return None


def one_cause(detectors: dict[str, FollowupPressure], fired: list[ShiftEvent],
              parts: dict[str, tuple[str, ...]] | None = None) -> ShiftEvent:
    """One follow-up-pressure event for the alarms `fired` of one record (see the module);
    `parts`: for each intersection cohort ('segment+tenure_band=smb+m4-12'), the cohorts it
    joins ('segment=smb', 'tenure_band=m4-12')."""
    alarmed = {e.value for e in fired}
    # the detectors that alarmed now and those still watching; a latched one (an earlier
    # cause, not yet reviewed) holds stale counts and takes no part
    live = {k: d for k, d in detectors.items() if k in alarmed or d.watching}
    starts = [t for k, d in live.items() if (t := d.rise_t) is not None
              and (k in alarmed or (d.detector is not None and d.detector.above(0.0)))]
    t = min(starts) if starts else float("-inf")
    lifts = _lifts(live, t)
    cause = _name(live, lifts, t, parts or {})
    if cause is None:
        cause = WHOLE if WHOLE in live else sorted(alarmed)[0]
    whole = live.get(WHOLE)
    rose = {k for k, x in lifts.items() if x > 1.0}
    if whole is not None and whole.detector is not None and whole.detector.above(0.0):
        rose.add(WHOLE)  # the whole mission saw the rise too: latched with it, re-armed on review
    related = sorted((alarmed | rose) - {cause})
    for k in [cause, *related]:
        detectors[k].latch()
    level = fired[0].evidence["level"]
    evidence: dict[str, Any] = {**detectors[cause].summary(t), "level": level,
                                "alarmed": sorted(alarmed), "related": [detectors[k].summary(t) for k in related]}
    return ShiftEvent("followup_pressure", f"followup:{cause}", cause, evidence)
