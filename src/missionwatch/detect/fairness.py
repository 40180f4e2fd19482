"""Fairness delta: one rule of a spec over one protected proxy.

Each cohort's metric is a running mean. A cohort is compared with its reference
(the rest of the proxy's cohorts, the largest cohort, or a named one) through a
time-uniform confidence sequence for mean(cohort) - c * mean(reference):
c = 1 for an absolute gap, c = the threshold ratio for a ratio rule. Verdicts:

- `beyond`: the whole interval lies beyond a threshold in the harm direction;
- `within`: the whole interval lies within every threshold;
- `insufficient`: neither yet; `min_detectable_gap` says how large a gap the
  current sample sizes would reveal;
- `too_small`: the cohort or its reference has fewer than `min_samples`;
- `reference`: the cohort is the reference itself;
- `not_judged`: the proxy already had `max_cohorts` judged cohorts when this one
  reached `min_samples`, or the cohort is a catch-all of values the spec does not
  expect (`(undeclared)`, `(other)`), which is never judged.

Dependence. The observations of a per-action metric are clustered by subject (a subject's
actions share its propensity; a few subjects get many actions). When updates name their
subject (`update(..., before=...)`, as the monitor does), each cohort is also kept as a
ratio over subjects (stats.RatioStat) and the asymptotic intervals use its cluster-robust
(sandwich) variance with subjects as the sample size: they assume subjects independent of
each other, not actions. Measured (tests/detect/test_fairness_clusters.py): fair missions
with heavy subjects and Beta random effects escalated in 64 of 200 taking actions as
independent, none of 200 by subject. Strict intervals still take actions as independent.

A cohort takes one of the `max_cohorts` places when it first has `min_samples`
observations, so a flurry of junk values that each appear a few times never
crowds out a real cohort: the order of arrival does not decide who is judged.

Guarantee: each interval is computed at alpha / (rules x proxies x max_cohorts x
thresholds of the rule), so on a mission whose true gaps are all within the
thresholds the chance of ever a `beyond`, over an unbounded stream, is at most
the spec's alpha (Bonferroni across every test the spec can run). The default
intervals are asymptotic (`stats.cs`); with `strict=True` (a spec's
`intervals = "strict"`) they are the exact betting sequences of `stats.betting`
for 0/1 metrics, valid at every sample size.
"""

from __future__ import annotations

import copy
import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from ..spec import FairnessRule
from ..stats.base import Detector
from ..stats.betting import BettingCS, strict_linear, strict_linear_e_value
from ..stats.cs import MeanStat, RatioStat, linear_cs, linear_e_value

__all__ = ["CohortVerdict", "Disparity", "FairnessDelta", "any_beyond", "disparity"]

Verdict = Literal["beyond", "within", "insufficient", "too_small", "reference", "not_judged"]
PRIOR_N = 10.0
CATCH_ALL = frozenset({"(undeclared)", "(other)"})
"""Cohort values that gather what the spec does not expect: never judged."""
_UNBOUNDED = (-math.inf, math.inf)
_NONE = (0.0, 0.0)
"""The intervals of verdicts that judge nothing: one tuple each, shared by every such verdict."""


def _zero(x: float) -> float:
    """x, or for a float +0 the one shared 0.0 (a verdict kept for each cohort of each mission
    holds no float of its own for a reference that summed to 0)."""
    if x == 0 and type(x) is float and math.copysign(1.0, x) > 0:
        return _ZERO
    return x


_ZERO = 0.0


def _r(x: float, nd: int = 6) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return round(x, nd)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a verdict's e-value is computed from (asymptotic intervals): the rule, the cohort's
    and its reference's statistics as of the verdict (copies), and the prior variance."""

    rule: FairnessRule
    stat: MeanStat
    ref: MeanStat
    prior: float

    def value(self) -> float:
        """max over the rule's thresholds of the e-value for "beyond it", over the number of
        thresholds (a valid e-value: at most their mean), so it reaches 1/alpha iff a
        threshold's interval at alpha / thresholds lies beyond it."""
        rule, es = self.rule, []
        for coef, boundary, direction in thresholds_of(rule):
            es.append(linear_e_value(self.stat, self.ref, coef, boundary, direction, prior_var=self.prior,
                                     prior_n=PRIOR_N))
        return max(es, default=1.0) / n_thresholds(rule)


def n_thresholds(rule: FairnessRule) -> int:
    return (rule.max_gap is not None) + (rule.min_ratio is not None) + (rule.max_ratio is not None)


def thresholds_of(rule: FairnessRule) -> list[tuple[float, float, int]]:
    """(coef, boundary, direction) of each one-sided test of "beyond a threshold", in order:
    mean(cohort) - coef * mean(reference) beyond `boundary` (direction +1: above, -1: below)."""
    out: list[tuple[float, float, int]] = []
    if rule.max_gap is not None:
        if rule.harm != "higher":
            out.append((1.0, -rule.max_gap, -1))
        if rule.harm != "lower":
            out.append((1.0, rule.max_gap, +1))
    if rule.min_ratio is not None:
        out.append((rule.min_ratio, 0.0, -1))
    if rule.max_ratio is not None:
        out.append((rule.max_ratio, 0.0, +1))
    return out


@dataclass(frozen=True, slots=True)
class CohortVerdict:
    cohort: str
    verdict: Verdict
    n: int
    total: float
    """The cohort's count and sum of observations as of the verdict (its estimate is their mean)."""
    reference: str
    reference_n: int
    reference_total: float
    interval: tuple[float, float]
    breached: str | None
    """Which threshold the interval lies beyond: 'max_gap', 'min_ratio' or 'max_ratio'."""
    min_detectable_gap: float
    alpha: float
    evidence: float | Evidence = field(default=1.0, repr=False, compare=False)
    """The e-value, or what it is computed from when first read (`e_value`)."""

    @property
    def estimate(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def reference_estimate(self) -> float:
        return self.reference_total / self.reference_n if self.reference_n else math.nan

    @property
    def gap(self) -> float:
        """estimate - reference_estimate (0 for the reference itself)."""
        if self.verdict == "reference":
            return 0.0
        return self.estimate - self.reference_estimate if self.reference_n else math.nan

    @property
    def ratio(self) -> float:
        """estimate / reference_estimate (1 for the reference itself)."""
        if self.verdict == "reference":
            return 1.0
        ref = self.reference_estimate
        return self.estimate / ref if self.reference_n and ref else math.nan

    @property
    def e_value(self) -> float:
        """Evidence that the cohort is beyond a threshold: >= 1/alpha exactly when the verdict is
        `beyond`. Comparable across cohorts and metrics (the receipt's e-BH report uses it).
        Computed when first read: most verdicts are superseded before anything reads it."""
        e = self.evidence
        if isinstance(e, Evidence):
            e = e.value()
            object.__setattr__(self, "evidence", e)
        return e

    def to_json(self, rule: FairnessRule) -> dict[str, Any]:
        thresholds = {
            k: v
            for k, v in (("max_gap", rule.max_gap), ("min_ratio", rule.min_ratio), ("max_ratio", rule.max_ratio))
            if v is not None
        }
        return {
            "estimate": _r(self.estimate),
            "n": self.n,
            "reference": self.reference,
            "reference_estimate": _r(self.reference_estimate),
            "reference_n": self.reference_n,
            "gap": _r(self.gap),
            "interval": [_r(self.interval[0]), _r(self.interval[1])],
            "ratio": _r(self.ratio),
            "harm": rule.harm,
            "threshold": thresholds,
            "breached": self.breached,
            "verdict": self.verdict,
            "min_detectable_gap": _r(self.min_detectable_gap),
            "alpha": self.alpha,
            "e_value": _r(self.e_value, 3),
        }


@dataclass(frozen=True)
class Disparity:
    """Point summaries of a proxy's cohorts, in the terms the fairness toolkits use."""

    rates: dict[str, float]
    """Each cohort's mean (a selection rate, for a 0/1 metric)."""
    difference: float
    """Largest minus smallest rate (Fairlearn's demographic_parity_difference)."""
    ratio: float
    """Smallest over largest rate (Fairlearn's demographic_parity_ratio)."""
    ratio_to_overall: float
    """min over cohorts of min(rate / overall, overall / rate) (Fairlearn's
    MetricFrame.ratio(method="to_overall"))."""
    largest: str
    """The cohort with the most observations (Aequitas's major group)."""
    ratio_to_largest: dict[str, float]
    """Each rate over the largest cohort's (Aequitas's disparity against the major group)."""


def disparity(cohorts: Mapping[str, MeanStat]) -> Disparity:
    """Disparity summaries of cohorts with at least one observation each."""
    stats = {c: m for c, m in sorted(cohorts.items()) if m.n}
    if not stats:
        raise ValueError("no cohort has an observation")
    rates = {c: m.mean for c, m in stats.items()}
    overall = sum(m.total for m in stats.values()) / sum(m.n for m in stats.values())
    hi, lo = max(rates.values()), min(rates.values())

    def sym(r: float) -> float:
        if r == overall:
            return 1.0
        return min(r / overall, overall / r) if r and overall else 0.0

    largest = max(stats, key=lambda c: stats[c].n)
    base = rates[largest]
    return Disparity(
        rates=rates, difference=hi - lo, ratio=lo / hi if hi else math.nan,
        ratio_to_overall=min(sym(r) for r in rates.values()), largest=largest,
        ratio_to_largest={c: r / base if base else math.nan for c, r in rates.items()},
    )


class _StrictBets:
    """Strict mode's betting sequences: one per cohort over its own observations, one over all
    observations, and (reference = "rest") one per cohort over the rest of the proxy, a copy of
    the one over all observations when the cohort first appears. Each is tuned to `alpha`, its
    share of the level (a difference uses two sequences)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.own: dict[str, BettingCS] = {}
        self.all = BettingCS(alpha)
        self.rest: dict[str, BettingCS] = {}

    def open(self, cohort: str, *, rest: bool) -> None:
        """Start the sequences of a cohort seen for the first time."""
        self.own[cohort] = BettingCS(self.alpha)
        if rest:
            self.rest[cohort] = copy.deepcopy(self.all)

    def streams_of(self, cohort: str) -> list[BettingCS]:
        """The sequences an observation of `cohort` goes to: its own, every other cohort's
        rest, and the one over all observations."""
        rest = [bet for other, bet in self.rest.items() if other != cohort]
        return [self.own[cohort], *rest, self.all]

    def pair(self, cohort: str, *, rest: bool, named: str | None) -> tuple[BettingCS, BettingCS]:
        """`cohort`'s own sequence and its reference's: its rest, or the `named` cohort's own."""
        if rest:
            return self.own[cohort], self.rest[cohort]
        bet = self.own.get(named) if named is not None else None
        return self.own[cohort], bet or BettingCS(self.alpha)  # a named reference with no observations yet


class _Cohort(MeanStat):
    """A cohort's running statistic, with what its detector keeps beside it: its observations
    by unit (`units`, None while no update of the detector named its unit: they are then each
    their own, `RatioStat.singletons` of the statistic), its latest settled verdict and its
    count of updates. One object per cohort, not one entry in each of four dicts per detector
    (most detectors have a few cohorts, and a small dict costs more than the entries it holds).

    A settled verdict that judged nothing (too_small, not_judged, reference: most cohorts of
    most missions hold one) is kept as its kind in `verdict` and the numbers that tell it from
    another such verdict of the detector in `v_n` to `v_ref_total` (`FairnessDelta._kept` makes
    it whole): 40 bytes, where a CohortVerdict of its own is 128."""

    __slots__ = ("touches", "units", "v_n", "v_ref", "v_ref_n", "v_ref_total", "v_total", "verdict")
    v_n: int
    v_total: float
    v_ref: str
    v_ref_n: int
    v_ref_total: float

    def __init__(self) -> None:
        super().__init__()
        self.units: RatioStat | None = None
        self.verdict: CohortVerdict | Verdict | None = None
        """The latest settled verdict, or its kind when it judged nothing (see above)."""
        self.touches = 0

    def keep(self, verdict: CohortVerdict) -> None:
        """Keep `verdict` as the settled one (see above)."""
        if verdict.verdict in ("within", "beyond", "insufficient"):
            self.verdict = verdict
            return
        self.verdict = verdict.verdict
        self.v_n, self.v_total, self.v_ref = verdict.n, verdict.total, verdict.reference
        self.v_ref_n, self.v_ref_total = verdict.reference_n, verdict.reference_total

    def kept(self, proxy: str, cohort: str, alpha: float) -> CohortVerdict | None:
        """The settled verdict as `FairnessDelta.assess` made it (one that judged nothing made whole)."""
        kind = self.verdict
        if not isinstance(kind, str):
            return kind
        interval, mdg = (_NONE, math.nan) if kind == "reference" else (_UNBOUNDED, math.inf)
        return CohortVerdict(sys.intern(f"{proxy}={cohort}"), kind, self.v_n, self.v_total, self.v_ref, self.v_ref_n,
                             self.v_ref_total, interval, None, mdg, alpha)

    def by_unit(self) -> RatioStat:
        return self.units if self.units is not None else RatioStat.singletons(self)


class _Units:
    """A detector's observations by independent unit (`FairnessDelta.update`'s `before`: the
    subject), as a view: per cohort, a ratio over units; the intervals read these once any
    update names its unit (cluster-robust variances, with units as the sample size)."""

    __slots__ = ("_fd",)

    def __init__(self, fd: FairnessDelta) -> None:
        self._fd = fd

    @property
    def clustered(self) -> bool:
        return self._fd.clustered

    @property
    def total(self) -> RatioStat:
        fd = self._fd
        return fd.unit_total if fd.unit_total is not None else RatioStat.singletons(fd.total)

    def pair(self, cohort: str, reference: str | None) -> tuple[MeanStat, MeanStat, float]:
        """The cohort's and its reference's statistics by unit (`reference` None: the rest of
        the proxy), and the prior variance."""
        cohorts, total = self._fd.cohorts, self.total
        own = cohorts[cohort].by_unit()
        if reference is None:
            other = total.minus(own)
        else:
            found = cohorts.get(reference)
            other = found.by_unit() if found is not None else RatioStat()
        return own.as_mean(), other.as_mean(), total.as_mean().var


def _add_units(fd: FairnessDelta, stat: _Cohort, x: float, prev: float | None,
               before: tuple[float, int] | None) -> None:
    """x for the cohort `stat` of `fd`, or a revision from `prev` to x, of a unit that held
    `before` (None: a unit of its own), by unit. At the first update that names its unit, every
    cohort's ratio over units is made from its statistic (all observations until then were each
    their own unit: `RatioStat.singletons`, equal to adding them one by one)."""
    total = fd.unit_total
    if total is None:
        total = fd.unit_total = RatioStat.singletons(fd.total)
        for c in fd.cohorts.values():
            c.units = RatioStat.singletons(c)
    units = stat.units
    assert units is not None
    units.add(x, prev, before)
    total.add(x, prev, before)
    fd.clustered = fd.clustered or (prev is None and before is not None)


class FairnessDelta(Detector):
    """Per-cohort means of one metric across one protected proxy, judged by one rule."""

    __slots__ = ("_bets", "alpha", "clustered", "cohorts", "escalated", "judged", "max_cohorts", "min_samples",
                 "proxy", "rule", "strict", "total", "unit_total")

    def __init__(
        self, rule: FairnessRule, proxy: str, alpha: float, min_samples: int, max_cohorts: int,
        strict: bool = False,
    ) -> None:
        self.rule = rule
        self.proxy = proxy
        self.alpha = alpha
        self.min_samples = min_samples
        self.max_cohorts = max_cohorts
        self.strict = strict
        self._reset()

    def _reset(self) -> None:
        self.cohorts: dict[str, _Cohort] = {}
        self.total = MeanStat()
        self.unit_total: RatioStat | None = None
        """All observations by unit; None while no update named its unit (see `_add_units`)."""
        self.clustered = False
        """Whether an update named its unit: the intervals then read the ratios over units."""
        self.judged: tuple[str, ...] = ()
        """The cohorts given a judged place, in the order they took it."""
        self.escalated: set[str] | None = None
        """Cohorts escalated and not judged `within` since; they do not escalate again (None: none
        ever was, the case of nearly every detector)."""
        self._bets = _StrictBets(self.alpha / (2 * self.n_thresholds)) if self.strict else None

    @property
    def n_thresholds(self) -> int:
        return n_thresholds(self.rule)

    def update(self, cohort: str, x: float, *, prev: float | None = None, t: float | None = None,
               before: tuple[float, int] | None = None) -> FairnessDelta:
        """Add observation x for `cohort`, or revise an earlier one from `prev` to x. `before`:
        the (sum, count) of this metric's earlier observations of x's unit (its subject): the
        observations of one subject are one cluster, and the intervals take the variance
        between subjects, not between actions (a subject's actions share its propensity)."""
        if self.strict:
            if prev is not None:
                raise ValueError("strict intervals need final observations; this metric revises earlier ones")
            if not (x == 0.0 or x == 1.0):
                raise ValueError(f"strict intervals take 0/1 observations, got {x}")
        stat = self._cohort(cohort)
        if self._bets is not None:
            for bet in self._bets.streams_of(cohort):
                bet.update(x)
        if before is not None or self.unit_total is not None:
            _add_units(self, stat, x, prev, before)
        if prev is None:
            stat.update(x)
            self.total.update(x)
        else:
            stat.revise(prev, x)
            self.total.revise(prev, x)
        stat.touches += 1
        self._admit(cohort, stat)
        return self

    units = property(_Units, doc="The observations by unit (a view, `_Units`).")

    def _admit(self, cohort: str, stat: MeanStat) -> None:
        """Give `cohort` a judged place once it has `min_samples`, while places remain."""
        if (stat.n >= self.min_samples and len(self.judged) < self.max_cohorts
                and cohort not in CATCH_ALL and cohort not in self.judged):
            self.judged = (*self.judged, cohort)

    def update_block(self, cohort: str, n: int, total: float, sumsq: float) -> FairnessDelta:
        """Add n observations of `cohort` at once, given their sum and sum of squares
        (what a ledger bucket holds). Equal to n calls of `update`; the cohort is then
        due for judgement (a block is one look). Not in strict mode: bets need the
        observations one by one, in order."""
        if self.strict:
            raise ValueError("strict intervals need observations one by one, not ledger blocks")
        return self._add_block(cohort, MeanStat(n, total, sumsq))

    def _add_block(self, cohort: str, block: MeanStat) -> FairnessDelta:
        stat = self._cohort(cohort)
        stat.n, stat.total, stat.sumsq = stat.n + block.n, stat.total + block.total, stat.sumsq + block.sumsq
        self.total = self.total.merge(block)
        if self.unit_total is not None:  # observations that are each their own unit (a ledger block names none)
            stat.units = stat.by_unit().merge(RatioStat.singletons(block))
            self.unit_total = self.unit_total.merge(RatioStat.singletons(block))
        stat.touches += block.n
        self._admit(cohort, stat)
        return self

    def update_many(self, cohort: str, xs: np.ndarray) -> FairnessDelta:
        """Add observations of `cohort` that arrived one after another, in that order;
        equal to `update` on each (strict mode included). One look, like a block."""
        xs = np.asarray(xs, dtype=float)
        if self._bets is not None:
            if xs.size and not np.isin(xs, (0.0, 1.0)).all():
                raise ValueError("strict intervals take 0/1 observations")
            self._cohort(cohort)
            for bet in self._bets.streams_of(cohort):
                bet.update_many(xs)
        return self._add_block(cohort, MeanStat(xs.size, float(xs.sum()), float((xs * xs).sum())))

    def _cohort(self, cohort: str) -> _Cohort:
        """The cohort's running statistic (strict mode: its betting sequences, and the one of
        the rest of the proxy, from the cohort's first observation on)."""
        stat = self.cohorts.get(cohort)
        if stat is None:
            stat = self.cohorts[cohort] = _Cohort()
            if self.unit_total is not None:
                stat.units = RatioStat()
            if self._bets is not None:
                self._bets.open(cohort, rest=self.rule.reference == "rest" and cohort not in CATCH_ALL)
        return stat

    def status(self) -> dict[str, Any]:
        return {"detector": f"fairness:{self.rule.metric}", "proxy": self.proxy,
                "verdicts": {c: v.to_json(self.rule) for c, v in sorted(self.verdicts.items())},
                "escalated": sorted(self.escalated or ())}

    def due(self, cohort: str) -> bool:
        """Whether `cohort` should be judged now: after each of its first 100 updates, then
        after every k-th with k = updates // 100 (a relative delay of at most 1%).
        Confidence sequences are time-uniform, so judging at a subset of times keeps
        their guarantee; this bounds the cost per update on long missions."""
        stat = self.cohorts.get(cohort)
        n = stat.touches if stat is not None else 0
        return n <= 100 or n % (n // 100) == 0

    def opens(self, cohort: str, verdict: CohortVerdict) -> bool:
        """Whether `verdict`, once settled, opens a new escalation episode for the cohort
        (read-only)."""
        return verdict.verdict == "beyond" and (self.escalated is None or cohort not in self.escalated)

    def settle(self, cohort: str, verdict: CohortVerdict) -> FairnessDelta:
        """Keep `verdict` as the cohort's verdict (`verdict(cohort)` returns it until the
        next); `beyond` opens an escalation episode, which `within` closes."""
        self.cohorts[cohort].keep(verdict)
        if verdict.verdict == "within":
            if self.escalated is not None:
                self.escalated.discard(cohort)
        elif verdict.verdict == "beyond":
            if self.escalated is None:
                self.escalated = set()
            self.escalated.add(cohort)
        return self

    def verdict(self, cohort: str) -> CohortVerdict | None:
        """The verdict as of the last `evaluate` of this cohort."""
        stat = self.cohorts.get(cohort)
        return stat.kept(self.proxy, cohort, self.alpha) if stat is not None else None

    @property
    def verdicts(self) -> dict[str, CohortVerdict]:
        return {c: v for c, stat in self.cohorts.items() if (v := stat.kept(self.proxy, c, self.alpha)) is not None}

    def _reference_cohort(self, cohort: str) -> str | None:
        """The cohort `cohort` is compared with (None: it is its own reference); with
        reference = "rest", not a cohort but all the others."""
        ref = self.rule.reference
        if ref == "rest":
            return ref
        if ref == "largest":
            ref = max(sorted(self.cohorts), key=lambda c: self.cohorts[c].n)
        return None if ref == cohort else ref

    def _reference(self, cohort: str) -> tuple[str, MeanStat] | None:
        name = self._reference_cohort(cohort)
        if name is None:
            return None
        if self.rule.reference == "rest":
            return "rest", self.total.minus(self.cohorts[cohort])
        return sys.intern(f"{self.proxy}={name}"), self.cohorts.get(name, MeanStat())

    def _strict_pair(self, bets: _StrictBets, cohort: str) -> tuple[BettingCS, BettingCS]:
        # the reference is not None: a cohort that is its own reference is not judged
        return bets.pair(cohort, rest=self.rule.reference == "rest", named=self._reference_cohort(cohort))

    def _interval(self, cohort: str, stat: MeanStat, ref: MeanStat, coef: float, alpha: float,
                  prior: float) -> tuple[float, float]:
        """Interval of mean(cohort) - coef * mean(reference) at alpha."""
        if self._bets is not None:
            _, lo, hi = strict_linear(*self._strict_pair(self._bets, cohort), coef, alpha)
        else:
            _, lo, hi = linear_cs(stat, ref, coef, alpha, prior_var=prior, prior_n=PRIOR_N)
        return lo, hi

    def _evidence(self, cohort: str, stat: MeanStat, ref: MeanStat, prior: float) -> float | Evidence:
        """The verdict's e-value (`Evidence.value`): at once in strict mode (the bets move on),
        else what computes it when read, from copies of the statistics as of now."""
        if self._bets is None:
            return Evidence(self.rule, MeanStat(stat.n, stat.total, stat.sumsq), MeanStat(ref.n, ref.total, ref.sumsq),
                            prior)
        pair = self._strict_pair(self._bets, cohort)
        es = [strict_linear_e_value(*pair, coef, boundary, direction)
              for coef, boundary, direction in thresholds_of(self.rule)]
        return max(es, default=1.0) / self.n_thresholds

    def evaluate(self, cohort: str) -> CohortVerdict:
        """Judge `cohort` now: `assess`, then `settle` on the result."""
        v = self.assess(cohort)
        self.settle(cohort, v)
        return v

    def assess(self, cohort: str) -> CohortVerdict:
        """The cohort's verdict as of now, without keeping it (a read-only look)."""
        stat = self.cohorts[cohort]
        label = sys.intern(f"{self.proxy}={cohort}")  # one copy of each label, whatever the missions
        found = self._reference(cohort)
        if found is None:
            v = CohortVerdict(label, "reference", stat.n, stat.total, label, stat.n, stat.total, _NONE, None,
                              math.nan, self.alpha)
            return v
        ref_name, ref = found
        judged = cohort in self.judged
        if not judged or stat.n < self.min_samples or ref.n < self.min_samples:
            small = stat.n < self.min_samples or (judged and ref.n < self.min_samples)
            kind: Verdict = "too_small" if small and cohort not in CATCH_ALL else "not_judged"
            v = CohortVerdict(label, kind, stat.n, stat.total, ref_name, ref.n, _zero(ref.total), _UNBOUNDED, None,
                              math.inf, self.alpha)
            return v
        a = self.alpha / self.n_thresholds
        cs, cr, prior = (stat, ref, self.total.var) if not self.clustered else \
            _Units(self).pair(cohort, None if self.rule.reference == "rest" else self._reference_cohort(cohort))
        rule = self.rule
        beyond: str | None = None
        within = True
        lo, hi = self._interval(cohort, cs, cr, 1.0, a, prior)
        hw = (hi - lo) / 2
        if rule.max_gap is not None:
            e = rule.max_gap
            if (rule.harm != "higher" and hi < -e) or (rule.harm != "lower" and lo > e):
                beyond = "max_gap"
            if not ((rule.harm == "higher" or lo > -e) and (rule.harm == "lower" or hi < e)):
                within = False
        if rule.min_ratio is not None:
            rlo, rhi = self._interval(cohort, cs, cr, rule.min_ratio, a, prior)
            if rhi < 0 and beyond is None:
                beyond = "min_ratio"
            within = within and rlo > 0
        if rule.max_ratio is not None:
            rlo, rhi = self._interval(cohort, cs, cr, rule.max_ratio, a, prior)
            if rlo > 0 and beyond is None:
                beyond = "max_ratio"
            within = within and rhi < 0
        verdict: Verdict = "beyond" if beyond else ("within" if within else "insufficient")
        mdg = (rule.max_gap or 0.0) + hw
        v = CohortVerdict(label, verdict, stat.n, stat.total, ref_name, ref.n, _zero(ref.total), (lo, hi), beyond, mdg,
                          self.alpha, self._evidence(cohort, cs, cr, prior))
        return v


def any_beyond(fd: FairnessDelta) -> bool:
    """Whether a cohort's settled verdict is "beyond" (as `fd.verdicts` says, without making them)."""
    return any(isinstance(v := stat.verdict, CohortVerdict) and v.verdict == "beyond" for stat in fd.cohorts.values())
