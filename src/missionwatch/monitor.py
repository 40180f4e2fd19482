"""The monitoring core's public names (the core lives in `missionwatch.core`)."""

from __future__ import annotations

from .core import Accepted, MissionState, MissionView, Monitor, Rejection, Step
from .intake import Prepared

__all__ = ["Accepted", "MissionState", "MissionView", "Monitor", "Prepared", "Rejection", "Step"]
