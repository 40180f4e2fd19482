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

Verdicts: `elevated` (surely above max_ratio times the baseline), `within_threshold`
(surely below it), `unchanged` (cannot yet be told apart from the baseline's
range), `insufficient_data` (fewer than min_samples on either side), `unavailable`
(most of the metric's outcomes could not be placed before or after the baseline: a
comparison would read what is missing as zero; `reason` says so). The interval
is a time-uniform confidence sequence for value - max_ratio * baseline.
For the variance statistic the baseline variance is taken as known.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from ..spec import RiskRule
from ..stats.base import Detector
from ..stats.cs import MeanStat, linear_cs, mean_cs

__all__ = ["RiskSignal"]

RiskVerdict = Literal["elevated", "within_threshold", "unchanged", "insufficient_data", "unavailable"]


class RiskSignal(Detector):
    def __init__(self, rule: RiskRule, alpha: float, min_samples: int) -> None:
        self.rule = rule
        self.alpha = alpha
        self.min_samples = min_samples
        self._reset()

    def _reset(self) -> None:
        self.base = MeanStat()
        self.post = MeanStat()
        self.verdict: RiskVerdict = "insufficient_data"
        self.events = 0
        """Revisions counted (an outcome or counted action placed in its phase)."""
        self.unplaced = 0
        """Outcomes of the metric no phase could be found for."""
        self.escalated = False
        """Escalated and not judged within_threshold since: it does not escalate again."""

    def update(self, x: float, *, phase: str, prev: float | None = None, t: float | None = None) -> RiskSignal:
        stat = self.base if phase == "baseline" else self.post
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

    def unplace(self) -> RiskSignal:
        """Count an outcome of the metric that no phase could be found for."""
        self.unplaced += 1
        return self

    @property
    def baseline_value(self) -> float:
        return self.base.var if self.rule.statistic == "variance" else self.base.mean

    def assess(self) -> RiskVerdict:
        """The verdict as of now, without keeping it (a read-only look)."""
        r = self.rule.max_ratio
        if self.base.n < self.min_samples or self.post.n < self.min_samples:
            return "insufficient_data"
        if self.unplaced > self.events:
            return "unavailable"
        if self.rule.statistic == "variance":
            lo, hi = mean_cs(self.post, self.alpha)
            lo, hi = lo - r * self.base.var, hi - r * self.base.var
        else:
            _, lo, hi = linear_cs(self.post, self.base, r, self.alpha,
                                  prior_var=self.base.var, prior_n=10.0)
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
        value, base = self.post.mean, self.baseline_value
        ratio = value / base if self.post.n and self.base.n and base else math.nan

        def r(x: float) -> float | None:
            return round(x, 6) if math.isfinite(x) else None

        out: dict[str, Any] = {"value": r(value), "baseline": r(base), "ratio": r(ratio), "verdict": self.verdict,
                               "statistic": self.rule.statistic, "max_ratio": self.rule.max_ratio,
                               "n": self.post.n, "baseline_n": self.base.n}
        if self.unplaced:
            out["unplaced"] = self.unplaced
        if self.verdict == "unavailable":
            out["reason"] = (f"{self.unplaced:,} of the {self.unplaced + self.events:,} outcomes counted could not "
                             "be placed before or after the baseline: they name no known contact action "
                             "(`follows`)")
        return out
