"""What an accepted record does to its mission: `observe_action` and `observe_outcome` update
the ledger, the subject, every detector the spec routes the record to, and return an
`Observation`: what they touched, for the judgement that follows (judge.py)."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from ..detect import (
    FairnessDelta,
    FollowupPressure,
    HardLimit,
    MixShift,
    NoveltyWatch,
    RiskSignal,
    ShiftEvent,
)
from ..detect.cause import one_cause
from ..detect.limits import LimitBreach
from ..ledger import NONE
from ..records import ActionRecord, OutcomeRecord
from ..spec import MetricSpec
from .isolation import Run
from .mission import MissionState, Subject
from .plan import scopes

__all__ = ["Observation", "observe_action", "observe_outcome"]


@dataclass
class Observation:
    """What one record touched: the detectors to judge, the shifts and breaches it revealed."""

    trigger: str
    t: float
    cohort: dict[str, str]
    touched: set[tuple[FairnessDelta, str]] = field(default_factory=set)
    touched_risk: set[RiskSignal] = field(default_factory=set)
    breaches: list[tuple[HardLimit, LimitBreach]] = field(default_factory=list)
    events: list[ShiftEvent] = field(default_factory=list)

    def metric(self, ms: MissionState, m: MetricSpec, cohort: dict[str, str], phase: str, x: float,
               prev: float | None, subj: Subject | None = None) -> None:
        """Observe metric `m` at x (or revise prev -> x) for a record of `cohort` and `phase`;
        `subj`: for a per-action metric, the action's subject (its cluster)."""
        slot = ms.plan.sum_slots.get(m.name) if subj is not None else None  # only a fairness rule reads it
        before = subj.observed(slot, x, ms.plan.subject_init) if subj is not None and slot is not None else None
        t = self.t
        for fd in ms.fairness.get(m.name, ()):
            v = cohort.get(fd.proxy, NONE)
            fd.update(v, x, prev=prev, t=t, before=before)
            self.touched.add((fd, v))
        if m.per == "action" and not m.total:  # a total's risk signal reads every action (`observe_action`)
            self.risk(ms, m, x, phase, prev, subj)
        for hl in ms.limits.get(m.name, ()):
            self.breaches.extend((hl, b) for b in hl.update(scopes(hl, ms.plan, cohort), x, prev=prev, t=t).breaches)

    def risk(self, ms: MissionState, m: MetricSpec, x: float, phase: str, prev: float | None = None,
             subj: Subject | None = None) -> None:
        """Observe x (or revise prev -> x) in `phase` for the risk signals of `m`; `subj`: the
        subject it belongs to (risk intervals are by subject within a phase)."""
        rss = ms.risk.get(m.name, ())
        if not rss:
            return
        before = None
        if subj is not None:
            before = subj.observed(ms.plan.risk_slots[(m.name, phase)], x - (prev or 0.0), ms.plan.subject_init,
                                   new=prev is None)
        for rs in rss:
            rs.update(x, phase=phase, prev=prev, t=self.t, before=before)
            self.touched_risk.add(rs)

    def isolated(self, ms: MissionState, run: Run, phase: str) -> None:
        """An isolated run, all of `phase`, closed: the metrics counting outcomes read its count."""
        for m in ms.plan.subject_metrics:
            if m.count_outcomes:
                for rs in ms.risk.get(m.name, ()):
                    rs.add_isolated(run.counts.get(m.name, 0), run.contacts, phase=phase)
                    self.touched_risk.add(rs)

    def unplaced(self, ms: MissionState, m: MetricSpec) -> None:
        """An outcome counted by `m` that no baseline comparison can place (it names an
        unknown action, or its subject had no contact action before it)."""
        for rs in ms.risk.get(m.name, ()):
            rs.unplace()
            self.touched_risk.add(rs)


def _numbers(a: ActionRecord) -> dict[str, float]:
    return {k: float(v) for k, v in a.attributes.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def _template(ms: MissionState, a: ActionRecord) -> str | None:
    value = a.attributes.get(ms.spec.actions.template_attribute)
    return value if isinstance(value, str) else None


def _subject(ms: MissionState, subject_id: str, cohort: dict[str, str]) -> Subject:
    """The action's subject; outcomes held for it until its first action are ledgered now,
    under the cohort that action gives (an action with no cohort: under `(none)`)."""
    subj = ms.subjects.get(subject_id)
    if subj is None:
        subj = ms.subjects[subject_id] = Subject(ms.intern(cohort))
    elif not subj.cohort and cohort:
        subj.cohort = ms.intern(cohort)
    for ot, ov, oval in ms.pending_outcomes.pop(subject_id, []):
        ms.ledger.add_outcome(ot, subj.cohort, ov, oval)
    return subj


def observe_action(ms: MissionState, a: ActionRecord, cohort: dict[str, str]) -> Observation:
    """An accepted, new action of `ms` (its cohort already normalised by `ms.cohort_of`)."""
    plan, t = ms.plan, a.occurred_at
    phase = "baseline" if ms.n_actions < ms.spec.baseline.actions else "post"
    ms.n_actions += 1
    obs = Observation(a.receipt_id, t, cohort)
    sid = sys.intern(a.subject.id)  # one copy of a customer's id, whatever the missions that act on it
    subj = _subject(ms, sid, cohort)
    is_contact = plan.is_contact(a.action_type)
    new_contact = not subj.contacted and is_contact
    template, numbers = _template(ms, a), _numbers(a)
    ms.ledger.add_action(t, cohort, a.action_type, a.decision, template, numbers, new_contact)
    for m in [*plan.action_metrics.get(a.action_type, ()), *plan.all_action_metrics]:
        x = m.value(a.decision, numbers)
        if x is not None:
            obs.metric(ms, m, cohort, phase, x, None, subj)
    for m in plan.risk_totals:  # the action's share of the total: its rate per action is compared
        x = m.value(a.decision, numbers) if not m.actions or a.action_type in m.actions else None
        obs.risk(ms, m, x or 0.0, phase, None, subj)
    for m in plan.count_actions.get(a.action_type, ()):
        k = subj.count(plan.count_slots[m.name], plan.subject_init)
        if subj.contacted:
            obs.metric(ms, m, subj.cohort, subj.phase, k + 1, k)
    labels = [sys.intern(f"{d}={subj.cohort[d]}") for d in plan.dims if d in subj.cohort] if is_contact else []
    if new_contact:
        subj.contacted, subj.phase = True, phase
        ms.population.update(labels)
        for m in plan.subject_metrics:
            obs.metric(ms, m, subj.cohort, phase, subj.counted(plan.count_slots.get(m.name)), None)
    if is_contact:
        ms.window_cohorts.update(labels)
        for m in plan.subject_metrics:
            obs.risk(ms, m, 0.0, phase, None, subj)
    for m in plan.count_actions.get(a.action_type, ()):
        obs.risk(ms, m, 1.0, phase, 0.0, subj)
    if ms.isolation is not None:
        for run in ms.isolation.action(sid, t, phase, is_contact):
            if run.phase is not None and run.contacts:
                obs.isolated(ms, run, run.phase)
    _shift(ms, a, template, obs)
    ms.window_from = t if ms.window_from is None else min(ms.window_from, t)
    ms.window_to = t if ms.window_to is None else max(ms.window_to, t)
    ms.window_actions += 1
    ms.window_mix[sys.intern(a.action_type + (f"+{template}" if template else ""))] += 1
    return obs


def _shift(ms: MissionState, a: ActionRecord, template: str | None, obs: Observation) -> None:
    """Strategy-shift detectors: novelty, mix, follow-up pressure; the baseline freezes here."""
    t, plan, cohort = obs.t, ms.plan, obs.cohort
    detectors: list[NoveltyWatch | MixShift | FollowupPressure] = []  # in the order events are judged
    if template is not None:
        detectors.append(ms.novelty["template"].update(template, t))
    detectors.append(ms.novelty["action_type"].update(a.action_type, t))
    detectors += [ms.novelty[f"cohort:{d}"].update(f"{d}={cohort[d]}", t) for d in plan.dims
                  if d in cohort and d not in plan.intersections]
    detectors.append(ms.mix["action_type"].update(a.action_type, t))
    if template is not None:
        detectors.append(ms.mix["template"].update(template, t))
    if plan.followup:  # first: a follow-up rise is the cause a rising follow-up share in the mix joins
        is_fu = a.action_type in plan.followup
        keys = ["*", *(f"{d}={cohort.get(d, NONE)}" for d in plan.dims)]
        clock = float(ms.n_actions)  # the mission's action count: a clock back-dated records cannot turn back
        fired = [e for k in keys if (e := ms.followup_detector(k).update(is_fu, clock).event) is not None]
        ms.followup_dispersion.add("followup" if is_fu else "other")  # after: predictable
        if fired:  # one rise shows in every cohort overlapping its cause: one event names it
            obs.events.append(one_cause(ms.followups, fired, ms.parts))
    obs.events.extend(e for d in detectors if (e := d.event) is not None)
    if not ms.frozen and ms.n_actions >= ms.spec.baseline.actions:
        ms.freeze()


def observe_outcome(ms: MissionState, o: OutcomeRecord, own: dict[str, str] | None) -> Observation:
    """An accepted, new outcome of `ms`; `own`: its own cohort, normalised, if it carries one."""
    t = o.occurred_at
    ms.n_outcomes += 1
    subj = ms.subjects.get(o.subject.id)
    if own:
        ms.ledger.add_outcome(t, own, o.outcome_type, o.value)
    elif subj is not None and (subj.cohort or subj.contacted):
        ms.ledger.add_outcome(t, subj.cohort, o.outcome_type, o.value)
    else:
        ms.pending_outcomes.setdefault(sys.intern(o.subject.id), []).append((t, o.outcome_type, o.value))
    if subj is None:
        subj = ms.subjects[sys.intern(o.subject.id)] = Subject(ms.intern(own or {}))
    obs = Observation(o.outcome_id, t, subj.cohort)
    # only an outcome that names its action (`follows`) has a phase to compare: the outcome of an
    # action in the baseline can come after the subject's next action, so no guess is unbiased
    phase = ms.phase_of(o.follows) if o.follows else None
    counted = ms.plan.count_outcomes.get(o.outcome_type, ())
    if ms.isolation is not None and counted:
        ms.isolation.outcome(o.subject.id, t, [m.name for m in counted])
    for m in counted:
        if phase is not None:
            obs.risk(ms, m, 1.0, phase, 0.0, subj)
        else:
            obs.unplaced(ms, m)
        k = subj.count(ms.plan.count_slots[m.name], ms.plan.subject_init)
        if not subj.contacted:
            continue
        for fd in ms.fairness.get(m.name, ()):
            v = subj.cohort.get(fd.proxy, NONE)
            fd.update(v, k + 1, prev=k, t=t)
            obs.touched.add((fd, v))
        for hl in ms.limits.get(m.name, ()):
            obs.breaches.extend((hl, b) for b in hl.update(scopes(hl, ms.plan, subj.cohort), k + 1, prev=k,
                                                            t=t).breaches)
    return obs
