"""`MissionView`: the one picture of a mission that every surface reads.

The strategy receipt is a view sealed into the mission's chain; the DuckDB mission
rows, the HTTP status and ledger answers (and the dashboard) read views too, so a
rule about what a mission shows is written once, here.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, fields
from typing import Any

from ..detect.fairness import any_beyond
from ..records import format_time
from ..stats.cs import e_bh
from .admission import resume_quorum
from .mission import MissionState, StateName

__all__ = ["MissionSummary", "MissionView", "review_status", "summary_of", "view_of"]


@dataclass(frozen=True)
class MissionSummary:
    """What a `missions` row shows of a mission: `MissionView`'s fields of those names, without
    the fairness frames, shifts and risk signals that make a view cost ~1-2 ms (a live ledger
    takes one of each mission a commit changed: thousands)."""

    mission_id: str
    registered: bool
    objective: str | None
    proxy_metric: str | None
    constraints: tuple[str, ...]
    owner: str | None
    human_delegate: str | None
    started_at: float | None
    """The registration's start (epoch seconds), None for an unregistered mission."""
    spec: str
    spec_version: str
    state: StateName
    cause: str | None
    review_status: str
    totals: dict[str, int]
    """actions, outcomes, subjects, duplicates, unattributed_outcomes."""


@dataclass(frozen=True)
class MissionView(MissionSummary):
    """An immutable snapshot of one mission (its summary's fields, then these). JSON-ready
    values throughout."""

    last_seq: int | None
    """The seq of the mission's latest out record (None before its first)."""
    current_tactic_cluster: str | None
    tactic_mix: dict[str, float]
    tactics: tuple[str, ...]
    """In the spec's words, the fewest tactics making up `[tactics] share` of the recent window."""
    cohorts_affected: tuple[str, ...]
    cohort_concentration: tuple[dict[str, Any], ...]
    """Cohorts whose share of recent contact actions is `[tactics] lift` times their share of
    the mission's contacted subjects, most concentrated first."""
    risk_signals: dict[str, dict[str, Any]]
    fairness: dict[str, dict[str, dict[str, Any]]]
    """By metric, then by cohort (`proxy=value`): estimate, n, interval, verdict, ... as in
    Fairlearn's MetricFrame.by_group, one frame per metric."""
    fairness_fdr: dict[str, Any]
    shifts: dict[str, Any]
    open_escalations: tuple[str, ...]
    window: dict[str, Any]
    integrity: dict[str, dict[str, Any]]
    last_review: dict[str, Any] | None = None
    """The latest accepted review: review_id, reviewer, decision, escalation_id, note, occurred_at."""
    resume_approvals: dict[str, Any] | None = None
    """While a paused mission needs more than one reviewer to resume: the pausing escalation,
    the reviewers who approved so far and how many it takes."""

    def status(self) -> dict[str, Any]:
        """CONTRACT 4's status answer."""
        return {"mission_id": self.mission_id, "state": self.state, "cause": self.cause, "seq": self.last_seq}

    def receipt_body(self, receipt_id: str) -> dict[str, Any]:
        """The content of a strategy receipt (CONTRACT 1.5) showing this view."""
        body: dict[str, Any] = {
            "receipt_id": receipt_id, "mission_id": self.mission_id, "registered": self.registered,
            "objective": self.objective, "proxy_metric": self.proxy_metric,
            "constraints": list(self.constraints), "owner": self.owner, "spec": self.spec,
            "spec_version": self.spec_version, "state": self.state, "review_status": self.review_status,
            "current_tactic_cluster": self.current_tactic_cluster, "tactic_mix": self.tactic_mix,
            "tactics": list(self.tactics), "cohorts_affected": list(self.cohorts_affected),
            "cohort_concentration": [dict(c) for c in self.cohort_concentration], "risk_signals": self.risk_signals,
            "fairness": self.fairness, "fairness_fdr": self.fairness_fdr, "shifts": self.shifts,
            "open_escalations": list(self.open_escalations), "window": self.window, "totals": self.totals,
        }
        if self.integrity:
            body["integrity"] = self.integrity
        if self.last_review is not None:
            body["last_review"] = self.last_review
        if self.resume_approvals is not None:
            body["resume_approvals"] = self.resume_approvals
        return body


def review_status(ms: MissionState) -> str:
    """continue, continue_with_monitoring, needs_review, paused or terminated."""
    if ms.state in ("terminated", "paused"):
        return ms.state
    if any(e.open for e in ms.escalations.values()):
        return "needs_review"
    flagged = (
        any(any_beyond(fd) for fds in ms.fairness.values() for fd in fds)
        or any(mx.shifted for mx in ms.mix.values())
        or any(fp.latched is not None for fp in ms.followups.values())
        or any(rs.verdict == "elevated" for rss in ms.risk.values() for rs in rss)
        or bool(ms.escalations)
    )
    return "continue_with_monitoring" if flagged or not ms.registered else "continue"


def _fairness(ms: MissionState) -> tuple[dict[str, dict[str, dict[str, Any]]], set[str], dict[str, float]]:
    """The fairness frames, the cohorts judged beyond a threshold, and the e-values for e-BH.
    A cohort not yet judged is assessed as of now (nothing is kept: a view changes nothing)."""
    frames: dict[str, dict[str, dict[str, Any]]] = {}
    affected: set[str] = set()
    e_values: dict[str, float] = {}
    for metric, fds in sorted(ms.fairness.items()):
        out = frames.setdefault(metric, {})
        for fd in fds:
            for cohort in sorted(fd.cohorts):
                v = fd.verdict(cohort) or fd.assess(cohort)
                out[v.cohort] = v.to_json(fd.rule)
                if v.verdict == "beyond":
                    affected.add(v.cohort)
                if v.verdict in ("beyond", "within", "insufficient"):
                    e_values[f"{metric}:{v.cohort}"] = v.e_value
    return frames, affected, e_values


def _label(labels: dict[str, str], tactic: str) -> str:
    """A tactic (`action_type+template` or `action_type`) in the spec's words: its own label,
    else its action type's with the template named (a template the spec did not foresee
    stays visible), else the tactic itself."""
    if tactic in labels:
        return labels[tactic]
    action_type, _, template = tactic.partition("+")
    if action_type in labels:
        return f"{labels[action_type]} ({template})" if template else labels[action_type]
    return tactic


def _tactics(ms: MissionState, mix: Counter[str]) -> tuple[str, ...]:
    """The fewest labelled tactics that make up `[tactics] share` of `mix`, most frequent first."""
    spec = ms.spec.tactics
    by_label: Counter[str] = Counter()
    for tactic, n in mix.items():
        by_label[_label(spec.labels, tactic)] += n
    total, acc, out = sum(by_label.values()), 0, []
    for label, n in sorted(by_label.items(), key=lambda kv: (-kv[1], kv[0])):
        if total and acc >= spec.share * total:
            break
        out.append(label)
        acc += n
    return tuple(out)


def _concentration(ms: MissionState, window: Counter[str]) -> tuple[dict[str, Any], ...]:
    """Cohorts whose share of the window's contact actions is `[tactics] lift` times their
    share of the mission's contacted subjects (each share within its cohort attribute)."""
    acts: Counter[str] = Counter()
    subjects: Counter[str] = Counter()
    for cohort, n in window.items():
        acts[cohort.partition("=")[0]] += n
    for cohort, n in ms.population.items():
        subjects[cohort.partition("=")[0]] += n
    out = []
    for cohort, n in window.items():
        dim = cohort.partition("=")[0]
        if n < ms.spec.cohorts.min_samples or not ms.population[cohort]:
            continue
        a_share, s_share = n / acts[dim], ms.population[cohort] / subjects[dim]
        if a_share >= ms.spec.tactics.lift * s_share:
            out.append({"cohort": cohort, "actions": n, "actions_share": round(a_share, 6),
                        "subjects_share": round(s_share, 6), "lift": round(a_share / s_share, 4)})
    return tuple(sorted(out, key=lambda c: (-c["lift"], c["cohort"])))


def view_of(ms: MissionState, status: str | None = None) -> MissionView:
    """The mission as it stands. Reads only: a view taken at any time (an HTTP request, a
    dashboard refresh) changes nothing the monitor later decides. `status`: the review status
    to show, when the caller settled it first (a receipt does)."""
    status = status or review_status(ms)
    fairness, affected, e_values = _fairness(ms)
    risk = {f"{rs.rule.metric}" + ("" if rs.rule.statistic == "mean" else f"_{rs.rule.statistic}"):
            rs.to_json() for rss in ms.risk.values() for rs in rss}
    mix_total = sum(ms.window_mix.values())
    recent, recent_cohorts = (ms.window_mix, ms.window_cohorts) if ms.window_actions else (ms.recent_mix,
                                                                                         ms.recent_cohorts)
    top = sorted(recent.items(), key=lambda kv: (-kv[1], kv[0]))[:1]
    shifts = {
        "events": list(ms.shift_events),
        "detectors": [mx.status() for mx in ms.mix.values()] + [fp.status() for _, fp in sorted(ms.followups.items())],
        "baseline": {"actions": ms.spec.baseline.actions, "frozen": ms.frozen},
    }
    summary = summary_of(ms, status)
    return MissionView(
        **{f.name: getattr(summary, f.name) for f in fields(MissionSummary)},
        last_seq=ms.seq - 1 if ms.seq else None,
        current_tactic_cluster=top[0][0] if top else None,
        tactic_mix={k: round(v / mix_total, 6) for k, v in sorted(ms.window_mix.items())},
        tactics=_tactics(ms, recent), cohorts_affected=tuple(sorted(affected | ms.shift_affected)),
        cohort_concentration=_concentration(ms, recent_cohorts), risk_signals=risk, fairness=fairness,
        fairness_fdr={"method": "e-BH", "alpha": ms.spec.spec.alpha, "tests": ms.plan.n_tests,
                      "flagged": e_bh(e_values, ms.spec.spec.alpha, ms.plan.n_tests)},
        shifts=shifts, open_escalations=tuple(sorted(e for e, x in ms.escalations.items() if x.open)),
        window={"from": format_time(ms.window_from) if ms.window_from is not None else None,
                "to": format_time(ms.window_to) if ms.window_to is not None else None,
                "actions": ms.window_actions},
        integrity={d: {"problems": list(e["problems"]), "records": e["records"],
                       "values": dict(sorted(e["values"].items()))} for d, e in sorted(ms.integrity.items())},
        last_review=dict(ms.last_review) if ms.last_review else None, resume_approvals=_approvals(ms),
    )


def summary_of(ms: MissionState, status: str | None = None) -> MissionSummary:
    """`view_of(ms)`'s fields that `MissionSummary` names (its part of a view)."""
    reg = ms.registration
    return MissionSummary(
        mission_id=ms.mission_id, registered=ms.registered,
        objective=reg.objective if reg else None, proxy_metric=reg.proxy_metric if reg else None,
        constraints=tuple(reg.constraints) if reg else (), owner=reg.owner if reg else None,
        human_delegate=reg.human_delegate if reg else None, started_at=reg.started_at if reg else None,
        spec=ms.spec.name, spec_version=ms.spec.version, state=ms.state, cause=ms.cause,
        review_status=status or review_status(ms), totals=_totals(ms))


def _totals(ms: MissionState) -> dict[str, int]:
    return {"actions": ms.n_actions, "outcomes": ms.n_outcomes, "subjects": len(ms.subjects),
            "duplicates": ms.duplicates, "unattributed_outcomes": sum(len(v) for v in ms.pending_outcomes.values())}


def _approvals(ms: MissionState) -> dict[str, Any] | None:
    need = resume_quorum(ms)
    if need <= 1 or ms.cause is None:
        return None
    return {"escalation_id": ms.cause, "approvals": [name for name, _ in ms.resume_approvals.get(ms.cause, [])],
            "needed": need}
