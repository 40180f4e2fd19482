"""Hard limits: a metric's point estimate past a fixed bound, over the whole
mission or in any one cohort, with at least min_samples observations. No
statistics: a limit is a policy owner's line in the sand and acts at once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..spec import LimitRule
from ..stats.base import Detector
from ..stats.cs import MeanStat

__all__ = ["HardLimit", "LimitBreach"]


@dataclass(frozen=True)
class LimitBreach:
    scope: str
    value: float
    n: int


class HardLimit(Detector):
    def __init__(self, rule: LimitRule) -> None:
        self.rule = rule
        self._reset()

    def _reset(self) -> None:
        self.stats: dict[str, MeanStat] = {}
        self.breached: set[str] = set()
        self._breaches: tuple[LimitBreach, ...] = ()

    @property
    def breaches(self) -> tuple[LimitBreach, ...]:
        """The scopes the last update took past the limit."""
        return self._breaches

    def update(self, scopes: list[str], x: float, *, prev: float | None = None,
               t: float | None = None) -> HardLimit:
        """Observe x (or revise prev -> x) in each scope; `breaches` then names the scopes newly
        past the limit."""
        out = []
        rule = self.rule
        for scope in scopes:
            stat = self.stats.get(scope)
            if stat is None:
                stat = self.stats[scope] = MeanStat()
            if prev is None:
                stat.update(x)
            else:
                stat.revise(prev, x)
            if scope in self.breached or stat.n < rule.min_samples:
                continue
            m = stat.mean
            if (rule.above is not None and m > rule.above) or (rule.below is not None and m < rule.below):
                self.breached.add(scope)
                out.append(LimitBreach(scope, m, stat.n))
        self._breaches = tuple(out)
        return self

    def status(self) -> dict[str, Any]:
        return {"detector": f"limit:{self.rule.metric}", "breached": sorted(self.breached),
                "values": {k: round(v.mean, 6) for k, v in sorted(self.stats.items()) if v.n}}
