"""Risk signals: a metric now against the same metric in the mission's baseline.

A per-action metric compares actions taken in the baseline with actions taken
since. A per-subject metric is measured per contact action of each phase:
counted actions of the phase, and outcomes that name (`follows`) an action of
the phase, per contact action of the phase. An outcome that names no known
action feeds the ledger, fairness and limits, but no baseline comparison: its
phase cannot be known; nor can that of an outcome that names no action (`follows`
is optional): the outcome of a baseline action may come after its subject's next
action, so attributing it to the latest action biases the baseline low (measured:
a fair simulated mission read 1.7x to 3.3x its baseline that way). Such outcomes are
counted as unplaced. Outcomes still on their way make the recent phase read lower
than it is: the lag errs toward missing a rise, never toward a false alarm.

When most of a metric's outcomes name no action and the spec says how long outcomes take
(`[outcomes] within`), the signal compares isolated runs instead: a subject's actions
chained by gaps shorter than that time, closed by a pause as long, each with its subject's
outcomes in its window (core/isolation.py says why that count is exact and what it
assumes). Outcomes per contact action is then a ratio over runs, its variance the
cluster-robust one (stats.RatioStat). Then
`basis` reads 'isolated_contacts', n and baseline_n count isolated runs, and
`contacts`, `baseline_contacts` their contact actions.

Verdicts: `elevated` (surely above max_ratio times the baseline), `within_threshold`
(surely below it), `unchanged` (cannot yet be told apart from the baseline's
range), `insufficient_data` (fewer than min_samples on either side), `unavailable`
(most of the metric's outcomes could not be placed before or after the baseline and the
spec gives no `[outcomes] within` to compare isolated contacts: a comparison would read
what is missing as zero; `reason` says so). The interval
is a time-uniform confidence sequence for value - max_ratio * baseline.
For the variance statistic the baseline variance is taken as known.

Totals. A metric that aggregates as 'sum' or 'count' grows with the mission, so its
signal compares its rate per action: every action of the mission is an observation, the
attribute's value (sum) or 1 (count) when the action matches the metric, else 0; `value`
and `baseline` are those means, and `aggregate` names the total.

Dependence. A subject's observations (its actions, or its contact actions with their counts)
share its propensity. Where updates name their subject (`before`, as the monitor does), the
mean statistic's interval takes the variance between subjects within each phase
(cluster-robust, stats.RatioStat), assuming subjects independent of each other; a subject
with observations in both phases counts in each (positively correlated phases make that
conservative). The variance statistic still takes observations as independent.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from ..spec import RiskRule
from ..stats.base import Detector
from ..stats.cs import MeanStat, RatioStat, linear_cs, mean_cs

__all__ = ["RiskSignal"]

RiskVerdict = Literal["elevated", "within_threshold", "unchanged", "insufficient_data", "unavailable"]
_NO_MEAN = MeanStat()
_NO_RATIO = RatioStat()
"""What an absent statistic reads as (never changed: `_made` makes the one to change)."""


class RiskSignal(Detector):
    __slots__ = ("aggregate", "alpha", "base", "base_units", "clustered", "escalated", "events", "iso_base",
                 "iso_post", "isolated", "min_samples", "post", "post_units", "rule", "unplaced", "verdict")

    def __init__(self, rule: RiskRule, alpha: float, min_samples: int, *, isolated: bool = False,
                 aggregate: Literal["mean", "sum", "count"] = "mean") -> None:
        self.rule = rule
        self.alpha = alpha
        self.min_samples = min_samples
        self.isolated = isolated
        """Whether plain outcomes are compared through isolated contacts (the spec has `within`)."""
        self.aggregate = aggregate
        """The metric's aggregate: for a total ('sum', 'count') the observations are every action's
        share of it, and the signal compares the total's rate per action."""
        self._reset()

    def _reset(self) -> None:
        self.base = MeanStat()
        self.post: MeanStat | None = None
        """Observations since the baseline (None: none yet; this and the next three are made at
        their first, as most missions that end soon never have any)."""
        self.base_units: RatioStat | None = None
        self.post_units: RatioStat | None = None
        """The same, by subject (`update`'s `before`), for the mean statistic: its intervals
        then take the variance between subjects (cluster-robust)."""
        self.clustered = False
        self.verdict: RiskVerdict = "insufficient_data"
        self.events = 0
        """Revisions counted (an outcome or counted action placed in its phase)."""
        self.unplaced = 0
        """Outcomes of the metric no phase could be found for."""
        self.escalated = False
        """Escalated and not judged within_threshold since: it does not escalate again."""
        self.iso_base: RatioStat | None = None
        self.iso_post: RatioStat | None = None
        """Outcomes per contact action of the isolated runs of each phase (core/isolation.py)."""

    def update(self, x: float, *, phase: str, prev: float | None = None, t: float | None = None,
               before: tuple[float, int] | None = None) -> RiskSignal:
        """Observe x in `phase`, or revise an earlier observation from `prev` to x. `before`:
        the (sum, count) of the metric's earlier observations of x's subject in the phase."""
        if phase == "baseline":
            stat = self.base
        else:
            if self.post is None:
                self.post = MeanStat()
            stat = self.post
        if before is not None and self.rule.statistic == "mean":
            self._made("base_units" if phase == "baseline" else "post_units").add(x, prev, before)
            self.clustered = True
        if self.rule.statistic == "variance" and phase != "baseline":
            mu = self.base.mean
            x = (x - mu) ** 2
            prev = None if prev is None else (prev - mu) ** 2
        if prev is None:
            stat.update(x)
        else:
            stat.revise(prev, x)
            self.events += 1
        return self

    def add_isolated(self, x: float, k: int, *, phase: str) -> RiskSignal:
        """A closed isolated run of `phase`: k contact actions, x outcomes of the metric."""
        self._made("iso_base" if phase == "baseline" else "iso_post").update(x, k)
        return self

    def _made(self, name: str) -> Any:
        """The statistic `name`, made now if it was not yet."""
        stat = getattr(self, name)
        if stat is None:
            stat = MeanStat() if name == "post" else RatioStat()
            setattr(self, name, stat)
        return stat

    @property
    def _post(self) -> MeanStat:
        return self.post if self.post is not None else _NO_MEAN

    def _units(self, name: str) -> RatioStat:
        """A ratio statistic to read (`base_units`, `post_units`, `iso_base`, `iso_post`)."""
        stat: RatioStat | None = getattr(self, name)
        return stat if stat is not None else _NO_RATIO

    @property
    def basis(self) -> Literal["contacts", "isolated_contacts", "none"]:
        """What the comparison reads: every contact (outcomes name their action), isolated
        runs of contacts (most outcomes name none, and the spec says how long they take), or
        nothing."""
        if self.unplaced <= self.events:
            return "contacts"
        return "isolated_contacts" if self.isolated else "none"

    def _pair(self) -> tuple[MeanStat, MeanStat]:
        """(baseline, since) of the comparison's basis."""
        if self.basis == "isolated_contacts":
            return self._units("iso_base").as_mean(), self._units("iso_post").as_mean()
        return self.base, self._post

    def _intervals_pair(self) -> tuple[MeanStat, MeanStat]:
        """What the interval reads: `_pair`, by subject where the observations name theirs."""
        if self.basis == "contacts" and self.clustered:
            return self._units("base_units").as_mean(), self._units("post_units").as_mean()
        return self._pair()

    def unplace(self) -> RiskSignal:
        """Count an outcome of the metric that no phase could be found for."""
        self.unplaced += 1
        return self

    def assess(self) -> RiskVerdict:
        """The verdict as of now, without keeping it (a read-only look)."""
        r = self.rule.max_ratio
        if self.basis == "none":
            return "unavailable"
        base, post = self._pair()
        if base.n < self.min_samples or post.n < self.min_samples:
            return "insufficient_data"
        base, post = self._intervals_pair()
        if self.rule.statistic == "variance":
            lo, hi = mean_cs(post, self.alpha)
            lo, hi = lo - r * base.var, hi - r * base.var
        else:
            _, lo, hi = linear_cs(post, base, r, self.alpha, prior_var=base.var, prior_n=10.0)
        return "elevated" if lo > 0 else ("within_threshold" if hi < 0 else "unchanged")

    def opens(self, verdict: RiskVerdict) -> bool:
        """Whether `verdict`, once settled, opens a new escalation episode (read-only)."""
        return verdict == "elevated" and not self.escalated

    def settle(self, verdict: RiskVerdict) -> RiskSignal:
        """Keep `verdict` as the signal's verdict; an elevated one opens an episode, which a
        within_threshold one closes."""
        self.verdict = verdict
        if verdict == "within_threshold":
            self.escalated = False
        elif verdict == "elevated":
            self.escalated = True
        return self

    def evaluate(self) -> RiskVerdict:
        """`assess`, then `settle` on the result."""
        return self.settle(self.assess()).verdict

    def status(self) -> dict[str, Any]:
        return self.to_json()

    def to_json(self) -> dict[str, Any]:
        b, p = self._pair()
        value, base = p.mean, (b.var if self.rule.statistic == "variance" else b.mean)
        ratio = value / base if p.n and b.n and base else math.nan

        def r(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        out: dict[str, Any] = {"value": r(value), "baseline": r(base), "ratio": r(ratio), "verdict": self.verdict,
                               "statistic": self.rule.statistic, "max_ratio": self.rule.max_ratio,
                               "n": p.n, "baseline_n": b.n}
        if self.aggregate != "mean":
            out["aggregate"] = self.aggregate
        if self.unplaced:
            out["unplaced"] = self.unplaced
        if self.basis == "isolated_contacts":
            out["basis"] = "isolated_contacts"
            out["contacts"], out["baseline_contacts"] = int(self._units("iso_post").k), int(self._units("iso_base").k)
        if self.verdict == "unavailable":
            out["reason"] = (f"{self.unplaced:,} of the {self.unplaced + self.events:,} outcomes counted could not "
                             "be placed before or after the baseline: they name no known contact action "
                             "(`follows`), and the spec gives no [outcomes] within to compare isolated "
                             "contacts")
        elif self.verdict == "insufficient_data" and self.basis == "isolated_contacts":
            out["reason"] = (f"most outcomes name no action: compared through isolated runs of contacts, of "
                             f"which {b.n:,} in the baseline and {p.n:,} since have closed (at least "
                             f"{self.min_samples:,} each are needed)")
        return out
