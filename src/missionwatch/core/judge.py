"""Judgement: from a mission and what a record did to it, the decisions to issue.

`judge(ms, obs)` is pure: it asks each detector the observation touched for its
verdict (a read-only `assess`), words every new escalation (code, reason,
evidence), names the pause cause, and says whether a strategy receipt is due.
`settle(ms, obs, decisions)` then keeps the verdicts in their detectors (which
track the escalation episodes) and logs the shifts; `Monitor` seals the
escalations into the mission's chain (emit.py). One cause, one escalation: a
cohort or signal escalates once per episode, not on every record.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ..codes import EscalationCode, escalation_reason
from ..detect import FairnessDelta, RiskSignal, ShiftEvent
from ..detect.fairness import CohortVerdict
from ..detect.risk import RiskVerdict
from ..records import format_time
from .mission import MissionState
from .observe import Observation

__all__ = ["Decisions", "Escalate", "judge", "log_events", "receipt_due", "settle"]


@dataclass(frozen=True)
class Escalate:
    """An escalation to issue."""

    severity: str
    """The spec's severity: 'review' or 'pause' ('report' is never issued)."""
    detector: str
    code: EscalationCode
    reason: str
    evidence: dict[str, Any]
    family: str | None = None
    """Events of one family share a cause: while its escalation is open, they join it."""


@dataclass
class Decisions:
    escalations: list[Escalate] = field(default_factory=list)
    changed: bool = False
    """A verdict moved, or an escalation or shift happened: a receipt follows."""
    verdicts: list[tuple[FairnessDelta, str, CohortVerdict]] = field(default_factory=list)
    """Fairness verdicts reached, for `settle` to keep."""
    risk: list[tuple[RiskSignal, RiskVerdict]] = field(default_factory=list)
    """Risk verdicts reached, for `settle` to keep."""
    problems: list[str] = field(default_factory=list)
    """The cohort dimensions whose integrity problems were worded."""
    joined: dict[int, str | None] = field(default_factory=dict)
    """Shift events (by index in the observation) that joined an open escalation of their
    family (its id; None: the one issued for the same record, named by `log_events`) instead
    of escalating."""


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.3g}"


def _whole(x: float | None) -> str:
    """A total as people write it: 50,120 or 1,234.5."""
    return "n/a" if x is None or not math.isfinite(x) else f"{round(x, 6):,.15g}"


def _num(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


def judge(ms: MissionState, obs: Observation | None, t: float) -> Decisions:
    """The decisions a record calls for (`obs` None: a record that observed nothing, a review)."""
    d = Decisions(problems=list(ms.new_problems))
    for dim in d.problems:
        d.changed = True
        _integrity(ms, dim, d)
    if obs is not None:
        _fairness(ms, obs, d)
        _risk(ms, obs, d)
        _limits(ms, obs, d)
        _shifts(ms, obs, d)
    return d


def receipt_due(ms: MissionState, t: float) -> bool:
    """The spec's cadence: every N actions, and whenever `every` of event time has passed."""
    if ms.window_actions >= ms.spec.cadence.actions:
        return True
    every = ms.plan.every
    return every is not None and ms.last_receipt_t is not None and t - ms.last_receipt_t >= every


def _integrity(ms: MissionState, dim: str, d: Decisions) -> None:
    severity = ms.spec.cohorts.integrity
    if severity == "report":
        return
    entry, c = ms.integrity[dim], ms.spec.cohorts
    problem = entry["problems"][0]
    declared = c.values.get(dim)
    what = {"undeclared": f"not among the declared {', '.join(declared or [])}",
            "too_many_values": f"more than the {c.max_values} distinct values kept",
            "over_budget": f"more distinct values than the {c.max_cohorts} cohorts the spec budgets "
                           "for judgement"}[problem]
    shown = ", ".join(repr(v) for v in sorted(entry["values"])[:5])
    reason = escalation_reason("cohort_integrity", dimension=dim, problem=what, values=shown)
    evidence = {"dimension": dim, "problem": problem, "values": dict(sorted(entry["values"].items())),
                "declared": declared, "distinct_values": len(ms.cohort_values[dim]),
                "max_cohorts": c.max_cohorts, "max_values": c.max_values}
    d.escalations.append(Escalate(severity, f"integrity:{dim}", "cohort_integrity", reason, evidence))


def _fairness(ms: MissionState, obs: Observation, d: Decisions) -> None:
    due = [p for p in obs.touched if p[0].due(p[1])]  # `due` reads only counts: the same before sorting
    for fd, cohort in sorted(due, key=lambda p: (p[0].rule.metric, p[0].proxy, p[1])):
        old = fd.verdict(cohort)
        new = fd.assess(cohort)
        opens = fd.opens(cohort, new)
        d.verdicts.append((fd, cohort, new))
        if old is not None and old.verdict == new.verdict:
            continue
        if new.verdict == "beyond" or (old is not None and old.verdict == "beyond"):
            d.changed = True
        if opens and fd.rule.severity != "report":
            d.escalations.append(_fairness_escalation(ms, fd, new))


def _fairness_escalation(ms: MissionState, fd: FairnessDelta, v: CohortVerdict) -> Escalate:
    rule = fd.rule
    m = ms.spec.metric(rule.metric)
    code: EscalationCode = "fairness_gap" if v.breached == "max_gap" else "fairness_ratio"
    threshold = {"max_gap": rule.max_gap, "min_ratio": rule.min_ratio, "max_ratio": rule.max_ratio}[
        v.breached or "max_gap"]
    reason = escalation_reason(
        code, metric_label=m.title.capitalize(), cohort=v.cohort, estimate=_fmt(v.estimate),
        reference_value=_fmt(v.reference_estimate), reference=v.reference, gap=_fmt(v.gap),
        lo=_fmt(v.interval[0]), hi=_fmt(v.interval[1]), threshold=_fmt(threshold),
        ratio=_fmt(v.ratio), confidence=f"{1 - v.alpha:.4%}")
    cohorts = {c: fd.cohorts[c].n for c in sorted(fd.cohorts)}
    evidence = {"metric": m.name, "proxy": fd.proxy, "cohort": v.cohort, **v.to_json(rule),
                "cohort_sizes": cohorts, "method": "normal-mixture confidence sequence, Bonferroni"}
    return Escalate(rule.severity, f"fairness:{m.name}", code, reason, evidence)


def _risk(ms: MissionState, obs: Observation, d: Decisions) -> None:
    for rs in sorted(obs.touched_risk, key=lambda r: (r.rule.metric, r.rule.statistic)):
        old_v = rs.verdict
        new_v = rs.assess()
        opens = rs.opens(new_v)
        d.risk.append((rs, new_v))
        if old_v == new_v:
            continue
        if "elevated" in (old_v, new_v):
            d.changed = True
        if opens and rs.rule.severity != "report":
            m = ms.spec.metric(rs.rule.metric)
            ev = rs.to_json()
            label = m.title + (" per action" if m.total else "")  # a total compares its rate per action
            reason = escalation_reason(
                "risk_elevated", metric_label=label.capitalize(), value=_fmt(ev["value"]),
                baseline=_fmt(ev["baseline"]), ratio=_fmt(ev["ratio"]), threshold=_fmt(rs.rule.max_ratio))
            d.escalations.append(Escalate(rs.rule.severity, f"risk:{m.name}", "risk_elevated", reason,
                                          {"metric": m.name, **ev, "alpha": rs.alpha}))


def _limit_evidence(ms: MissionState, obs: Observation, i: int) -> tuple[str, str, dict[str, Any]]:
    hl, b = obs.breaches[i]
    m = ms.spec.metric(hl.rule.metric)
    limit = hl.rule.above if hl.rule.above is not None else hl.rule.below
    fmt = _whole if m.total else _fmt  # a total in full (50,120), not 5.01e+04
    reason = escalation_reason("hard_limit", metric_label=m.title.capitalize(),
                               cohort="the whole mission" if b.scope == "mission" else b.scope,
                               value=fmt(b.value), limit=fmt(limit))
    evidence = {"metric": m.name, "scope": b.scope, "value": _num(b.value), "n": b.n,
                "above": hl.rule.above, "below": hl.rule.below, "min_samples": hl.rule.min_samples}
    if m.total:  # `value` is the scope's total, `n` its observations; min_samples did not apply
        evidence["aggregate"] = m.aggregate
    return m.name, reason, evidence


def _limits(ms: MissionState, obs: Observation, d: Decisions) -> None:
    for i, (hl, _) in enumerate(obs.breaches):
        d.changed = True
        name, reason, evidence = _limit_evidence(ms, obs, i)
        if hl.rule.severity != "report":
            d.escalations.append(Escalate(hl.rule.severity, f"limit:{name}", "hard_limit", reason, evidence))


def _shifts(ms: MissionState, obs: Observation, d: Decisions) -> None:
    if not obs.events:
        return
    shift = ms.spec.shift
    severity_of = {"new_template": shift.new_template, "new_action_type": shift.new_action_type,
                   "new_cohort": shift.new_cohort, "mix_shift": shift.mix, "followup_pressure": shift.followup}
    open_by_family: dict[str, tuple[str | None, str]] = {
        entry.family: (eid, entry.severity) for eid, entry in ms.escalations.items() if entry.open and entry.family}
    for i, e in enumerate(obs.events):
        d.changed = True
        sev = severity_of[e.code]
        fam = family(ms, e)
        held = open_by_family.get(fam) if fam is not None else None
        if held is not None and _RANK[sev] <= _RANK[held[1]]:  # a pause never joins a mere review
            d.joined[i] = held[0]
        elif sev != "report":
            d.escalations.append(Escalate(sev, e.detector, e.code, shift_reason(e), {"value": e.value, **e.evidence},
                                          fam))
            if fam is not None:
                open_by_family[fam] = (None, sev)


_RANK = {"report": 0, "review": 1, "pause": 2}


def family(ms: MissionState, e: ShiftEvent) -> str | None:
    """The cause family of a shift event: a follow-up pressure rise, and a rising share of a
    follow-up action type in the mix, are one change seen twice ('followup')."""
    if e.code == "followup_pressure" or (e.code == "mix_shift" and e.evidence.get("what") == "action_type"
                                         and e.value in ms.plan.followup):
        return "followup"
    return None


def shift_reason(e: ShiftEvent) -> str:
    ev = e.evidence
    if e.code == "mix_shift":
        return escalation_reason(
            "mix_shift", what="action types" if ev["what"] == "action_type" else "templates",
            value=e.value, share=f"{ev['share']:.1%}", baseline_share=f"{ev['baseline_share']:.1%}",
            statistic=_fmt(ev["statistic"]), level=_fmt(ev["level"]))
    if e.code == "followup_pressure":
        return escalation_reason(
            "followup_pressure", cohort="the whole mission" if e.value == "*" else e.value,
            share=_pct(ev["share"]), baseline_share=_pct(ev["baseline_share"]),
            statistic=_fmt(ev["statistic"]), level=_fmt(ev["level"]))
    return escalation_reason(e.code, value=e.value)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1%}"


def settle(ms: MissionState, d: Decisions) -> None:
    """Keep what `judge` decided in the mission: the verdicts in their detectors (and so their
    escalation episodes), the integrity problems as worded."""
    for fd, cohort, v in d.verdicts:
        fd.settle(cohort, v)
    for rs, rv in d.risk:
        rs.settle(rv)
    if d.problems:
        ms.new_problems = [dim for dim in ms.new_problems if dim not in d.problems]


def log_events(ms: MissionState, obs: Observation, d: Decisions, issued: dict[str, str]) -> None:
    """Log the breaches and shifts an observation revealed, as receipts show them; `issued`:
    the id of the escalation issued for this record, by cause family (what a shift event that
    joined one of them names)."""
    for i, (_, b) in enumerate(obs.breaches):
        name, _, evidence = _limit_evidence(ms, obs, i)
        ms.shift_events.append({"code": "hard_limit", "detector": f"limit:{name}", **evidence})
        if b.scope != "mission":
            ms.shift_affected |= {b.scope}  # a frozenset: the empty one is shared
    for i, e in enumerate(obs.events):
        if e.code == "followup_pressure":
            ms.shift_affected |= {str(c) for c in [e.value, *e.evidence.get("alarmed", ())] if c != "*"}
        logged: dict[str, Any] = {"code": e.code, "detector": e.detector, "value": e.value, "issued_at": format_time(obs.t),
                  "triggered_by": obs.trigger}
        if i in d.joined:
            fam = family(ms, e)
            logged["joined"] = d.joined[i] or (issued.get(fam) if fam is not None else None)
        ms.shift_events.append(logged)
