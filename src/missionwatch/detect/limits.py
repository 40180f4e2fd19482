"""Hard limits: a metric's point estimate past a fixed bound, over the whole
mission or in any one cohort, with at least min_samples observations. No
statistics: a limit is a policy owner's line in the sand and acts at once.

A limit on a total (a metric with aggregate = 'sum' or 'count') compares the running
total of its scope (the sum of its observations: the attribute, or 1 per counted action)
and breaches on the observation that takes it past the bound: a total is exact from the
first observation, so `min_samples` does not delay it."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, Literal

from ..spec import LimitRule
from ..stats.base import Detector
from ..stats.cs import MeanStat

__all__ = ["NO_SCOPES", "HardLimit", "LimitBreach"]


@dataclass(frozen=True)
class LimitBreach:
    scope: str
    value: float
    n: int


NO_SCOPES: frozenset[str] = frozenset()
"""The one empty set of scopes, shared (`frozenset()` makes a new one each time)."""


class HardLimit(Detector):
    __slots__ = ("_breaches", "aggregate", "breached", "rule", "stats")

    def __init__(self, rule: LimitRule, aggregate: Literal["mean", "sum", "count"] = "mean") -> None:
        self.rule = rule
        self.aggregate = aggregate
        """What the limit compares: the scope's mean, or its running total ('sum', 'count')."""
        self._reset()

    def _reset(self) -> None:
        self.stats: dict[str, MeanStat] = {}
        self.breached = NO_SCOPES
        """Scopes past the limit (a frozenset, made anew at each breach: an empty set is 216 bytes,
        and most limits of most missions are never breached)."""
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
                stat = self.stats[sys.intern(scope)] = MeanStat()  # one copy of each scope's name
            if prev is None:
                stat.update(x)
            else:
                stat.revise(prev, x)
            if scope in self.breached or (self.aggregate == "mean" and stat.n < rule.min_samples):
                continue
            m = self.value(stat)
            if (rule.above is not None and m > rule.above) or (rule.below is not None and m < rule.below):
                self.breached = self.breached | {scope}
                out.append(LimitBreach(scope, m, stat.n))
        self._breaches = tuple(out)
        return self

    def value(self, stat: MeanStat) -> float:
        """What the limit compares in a scope: its mean, or its total."""
        return stat.mean if self.aggregate == "mean" else stat.total

    def status(self) -> dict[str, Any]:
        return {"detector": f"limit:{self.rule.metric}", "breached": sorted(self.breached),
                "values": {k: round(self.value(v), 6) for k, v in sorted(self.stats.items()) if v.n}}
