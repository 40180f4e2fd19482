"""Detectors: small pure state machines fed by the monitor core.

Every detector stores its settings under their argument names, builds state in
`_reset()`, takes observations with `update(..., t=event_time)` returning self,
and exposes read-only verdicts. None does I/O, logs or reads a clock.
"""

from .fairness import CohortVerdict, FairnessDelta
from .limits import HardLimit, LimitBreach
from .risk import RiskSignal
from .shift import FollowupPressure, MixShift, NoveltyWatch, ShiftEvent

__all__ = [
    "CohortVerdict",
    "FairnessDelta",
    "FollowupPressure",
    "HardLimit",
    "LimitBreach",
    "MixShift",
    "NoveltyWatch",
    "RiskSignal",
    "ShiftEvent",
]
