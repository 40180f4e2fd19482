"""How one spec routes records to metrics and detectors: built once per spec, shared by its
missions."""

from __future__ import annotations

from ..detect import HardLimit
from ..ledger import NONE
from ..spec import MetricSpec, Spec, parse_duration

__all__ = ["Plan", "scopes"]


class Plan:
    COHORTS_KEPT = 4096
    """Distinct cohorts (attribute -> value dicts) the plan shares among its missions' subjects;
    past it, each mission keeps its own (`MissionState.intern`)."""

    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.cohorts: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        """One dict per distinct cohort for every mission of the spec (`MissionState.intern`)."""
        self.dims = tuple(spec.cohorts.keys) + tuple(spec.cohorts.protected)
        self.intersections = spec.cohorts.intersections()
        """Intersection attributes (of cohorts.keys and protected), with the attributes each joins."""
        self.contact = set(spec.actions.contact)
        self.followup = set(spec.actions.followup)
        self.action_metrics: dict[str, list[MetricSpec]] = {}
        self.all_action_metrics: list[MetricSpec] = []
        self.count_actions: dict[str, list[MetricSpec]] = {}
        self.count_outcomes: dict[str, list[MetricSpec]] = {}
        self.subject_metrics = [m for m in spec.metrics if m.per == "subject"]
        risky = {r.metric for r in spec.risk}
        self.risk_totals = [m for m in spec.metrics if m.total and m.name in risky]
        """Totals (sum, count) with a risk signal: every action of the mission feeds it its share
        of the total (0 when it does not match), so the signal compares a rate per action."""
        for m in spec.metrics:
            if m.per == "action":
                for a in m.actions:
                    self.action_metrics.setdefault(a, []).append(m)
                if not m.actions:
                    self.all_action_metrics.append(m)
            for a in m.count_actions:
                self.count_actions.setdefault(a, []).append(m)
            for o in m.count_outcomes:
                self.count_outcomes.setdefault(o, []).append(m)
        self._subject_slots(spec)
        self.mix_rises = tuple(spec.shift.mix_rises)
        self.followup_rises = tuple(spec.shift.followup_rises)
        """The shift detectors' rises, one tuple for every detector of every mission."""
        self.skew = parse_duration(spec.spec.skew)
        self.horizon = parse_duration(spec.spec.horizon)
        self.every = parse_duration(spec.cadence.every) if spec.cadence.every else None
        self.within = parse_duration(spec.outcomes.within) if spec.outcomes.within else None
        self.declared = {d: spec.cohorts.normal_values(d) for d in self.dims}
        self.protected = frozenset(spec.cohorts.protected)
        self.places = {p: min(spec.cohorts.max_cohorts, len(self.declared[p] or ())) or spec.cohorts.max_cohorts
                       for p in spec.cohorts.protected}
        """Judged cohorts per protected proxy: max_cohorts, or fewer when the spec declares
        fewer values (no alpha is spent on places no cohort can take)."""
        n_tests = 0
        for rule in spec.fairness:
            k = sum(v is not None for v in (rule.max_gap, rule.min_ratio, rule.max_ratio))
            n_tests += sum(self.places.values()) * (k > 0)
        self.n_tests = max(n_tests, 1)
        self.fairness_alpha = spec.spec.alpha / self.n_tests
        self.risk_alpha = spec.spec.alpha / max(len(spec.risk), 1)

    def _subject_slots(self, spec: Spec) -> None:
        """Where a subject keeps its running values (`Subject.vals`, one flat list): per metric
        counting actions or outcomes, its count; per per-action metric with a fairness rule, the sum
        and count of its observations; per phase of a metric with a risk signal, the same."""
        init: list[float] = []
        self.count_slots: dict[str, int] = {}
        self.sum_slots: dict[str, int] = {}
        self.risk_slots: dict[tuple[str, str], int] = {}
        for m in spec.metrics:
            if m.count_actions or m.count_outcomes:
                self.count_slots[m.name] = len(init)
                init.append(0)
        fair = {r.metric for r in spec.fairness}
        for m in spec.metrics:
            if m.per == "action" and m.name in fair:
                self.sum_slots[m.name] = len(init)
                init += (0.0, 0)
        for phase in ("baseline", "post"):  # the post phase last: a subject's list stops where it is used
            for name in dict.fromkeys(r.metric for r in spec.risk):
                self.risk_slots[(name, phase)] = len(init)
                init += (0.0, 0)
        self.subject_init = tuple(init)
        """A subject's values before any: counts 0, sums 0.0 of 0 observations."""

    def is_contact(self, action_type: str) -> bool:
        return not self.contact or action_type in self.contact


def scopes(hl: HardLimit, plan: Plan, cohort: dict[str, str]) -> list[str]:
    """Where a limit looks: the whole mission, or each cohort the observation belongs to."""
    if hl.rule.scope == "mission":
        return ["mission"]
    return [f"{d}={cohort.get(d, NONE)}" for d in plan.dims]
