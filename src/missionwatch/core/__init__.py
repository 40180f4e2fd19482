"""The functional core: records in, out records back (see `core.monitor`).

Its parts, in the order a message meets them: `admission` (what may enter, and why
not), `mission` (what one mission holds), `observe` (what a record does to it),
`judge` (the decisions that follow), `emit` (sealing them into the mission's chain)
and `views` (`MissionView`, the one picture of a mission every surface reads).
"""

from __future__ import annotations

from .mission import MissionState
from .monitor import Monitor
from .step import Accepted, Rejection, Step
from .views import MissionView

__all__ = ["Accepted", "MissionState", "MissionView", "Monitor", "Rejection", "Step"]
