"""What one mission holds: its ledger, detectors, subjects, ids, chain head and state.

`MissionState` is plain data plus the small rules that read or keep it consistent
(dedupe, cohort normalisation, phases, freezing the baseline). What a record does to
it is `observe.py`; what the mission then decides is `judge.py`. Picklable.
"""

from __future__ import annotations

import sys
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from ..detect import FairnessDelta, FollowupPressure, HardLimit, MixShift, NoveltyWatch, RiskSignal
from ..detect.limits import NO_SCOPES
from ..intake import Reject
from ..ledger import Ledger
from ..records import MissionRecord
from ..spec import Spec, normalize_value
from ..stats.dispersion import Dispersion
from ..stats.floats import one
from ..tlog import MerkleTree
from .idset import IdTable, content_digest
from .isolation import Isolation
from .plan import Plan

__all__ = ["BASELINE", "CONTACT", "OTHER", "UNDECLARED", "EscalationEntry", "MissionState", "Registration",
           "StateName", "Subject", "transition"]

StateName = Literal["running", "paused", "terminated"]
SHIFT_EVENTS_KEPT = 50
CONTACT, BASELINE = 1, 2
"""Flags of an action's id: it contacted its subject; it was among the baseline actions."""
UNDECLARED = "(undeclared)"
OTHER = "(other)"
INTEGRITY_SAMPLE = 20
"""Distinct unexpected values an integrity report lists per attribute (all are counted)."""
_ID_KINDS = {"r": "receipt_id", "o": "outcome_id", "v": "review_id"}


def transition(decision: str, state: StateName) -> StateName | None:
    """The state a review's decision moves a mission to, or None when it stays."""
    if decision == "resume" and state == "paused":
        return "running"
    if decision == "pause" and state == "running":
        return "paused"
    if decision == "terminate":
        return "terminated"
    return None


@dataclass(frozen=True, slots=True)
class Registration:
    """What a mission's registration says that the monitor reads later (views, the owner, the
    start), not the decoded record: a pydantic model with its set of fields, extras and
    signature costs over a kilobyte more a mission. Its text is shared by the missions that
    say the same (sys.intern: one owner, objective and constraints for a team's missions)."""

    objective: str
    proxy_metric: str
    constraints: tuple[str, ...]
    owner: str | None
    human_delegate: str | None
    started_at: float

    @classmethod
    def of(cls, m: MissionRecord) -> Registration:
        return cls(sys.intern(m.objective), sys.intern(m.proxy_metric), tuple(map(sys.intern, m.constraints)),
                   _interned(m.owner), _interned(m.human_delegate), m.started_at)


def _interned(text: str | None) -> str | None:
    return None if text is None else sys.intern(text)


@dataclass(slots=True)
class Subject:
    cohort: dict[str, str]
    contacted: bool = False
    phase: str = "baseline"
    vals: list[Any] | None = None
    """The subject's running values, at the places its plan gives them (`Plan.count_slots`,
    `sum_slots`, `risk_slots`): per metric counting actions or outcomes its count, per metric
    observed per action (by phase, for a risk signal) the sum and count of its observations, as
    the cluster of its actions (fairness and risk intervals are cluster-robust). One flat list
    (None: nothing kept yet), not a dict of tuples: tens of thousands of subjects hold one."""

    def counted(self, slot: int | None) -> int:
        """The subject's count at `slot` (None: a metric that counts nothing)."""
        vals = self.vals
        return vals[slot] if vals is not None and slot is not None and slot < len(vals) else 0

    def _grow(self, size: int, init: tuple[float, ...]) -> list[Any]:
        """`vals` made at least `size` long, from `init` (only as far as used: the places of
        later phases come last, and most subjects never reach them)."""
        vals = self.vals or []
        vals = self.vals = vals + list(init[len(vals):size])  # a concatenation: a list of just that size
        return vals

    def count(self, slot: int, init: tuple[float, ...]) -> int:
        """Add one to the subject's count at `slot`; return the count before. `init`: the plan's
        `subject_init`, the values before any."""
        vals = self.vals
        if vals is None or len(vals) <= slot:
            vals = self._grow(slot + 1, init)
        k: int = vals[slot]
        vals[slot] = k + 1
        return k

    def observed(self, slot: int, x: float, init: tuple[float, ...], *, new: bool = True) -> tuple[float, int]:
        """Note observation x at `slot` (`new` False: x added to an earlier observation's
        value); return the (sum, count) before it."""
        vals = self.vals
        if vals is None or len(vals) <= slot + 1:
            vals = self._grow(slot + 2, init)
        s, k = vals[slot], vals[slot + 1]
        # adding 0 keeps the sum's float object (most observations are 0: no new float for them)
        if x:
            vals[slot] = one(s + x)  # whole-numbered sums share their objects (stats/floats.py)
        vals[slot + 1] = k + new
        return s, k


class Latest:
    """The latest `kept` items appended, oldest first; the deque that keeps them is made at the
    first (an empty one is most of a kilobyte, and most missions never log an event)."""

    __slots__ = ("_items", "kept")

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self._items: deque[dict[str, Any]] | None = None

    def append(self, item: dict[str, Any]) -> None:
        if self._items is None:
            self._items = deque(maxlen=self.kept)
        self._items.append(item)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self._items if self._items is not None else ())

    def __len__(self) -> int:
        return len(self._items) if self._items is not None else 0


@dataclass
class EscalationEntry:
    severity: str
    open: bool = True
    t: float = 0.0
    """When it was issued (its issued_at): a review of it may not be dated earlier."""
    family: str | None = None
    """Its cause family (judge.family): while it is open, events of the family join it."""


def _detectors(ms: MissionState, spec: Spec, plan: Plan) -> None:
    c = spec.cohorts
    fairness: dict[str, list[FairnessDelta]] = {}
    for rule in spec.fairness:
        for proxy in c.protected:
            fd = FairnessDelta(rule, proxy, plan.fairness_alpha, c.min_samples, plan.places[proxy],
                               strict=spec.spec.intervals == "strict")
            fairness.setdefault(rule.metric, []).append(fd)
    risk: dict[str, list[RiskSignal]] = {}
    for r in spec.risk:
        risk.setdefault(r.metric, []).append(RiskSignal(r, plan.risk_alpha, c.min_samples,
                                                        isolated=plan.within is not None,
                                                        aggregate=spec.metric(r.metric).aggregate))
    limits: dict[str, list[HardLimit]] = {}
    for lim in spec.limits:
        limits.setdefault(lim.metric, []).append(HardLimit(lim, spec.metric(lim.metric).aggregate))
    # tuples: a short list holds room to grow, and these never do
    ms.fairness = {k: tuple(v) for k, v in fairness.items()}
    ms.risk = {k: tuple(v) for k, v in risk.items()}
    ms.limits = {k: tuple(v) for k, v in limits.items()}
    ms.novelty = {"template": NoveltyWatch("template", "new_template"),
                  "action_type": NoveltyWatch("action_type", "new_action_type")}
    for d in plan.dims:
        if d not in plan.intersections:  # a new combination of known values is no news
            ms.novelty[f"cohort:{d}"] = NoveltyWatch(d, "new_cohort")
    s = spec.shift
    ms.mix = {"action_type": MixShift("action_type", s.alpha, plan.mix_rises),
              "template": MixShift("template", s.alpha, plan.mix_rises)}
    ms.followups = {}
    ms.followup_dispersion = Dispersion()
    ms.isolation = Isolation(plan.within) if plan.within is not None else None


class MissionState:
    """Everything the core knows of one mission."""

    __slots__ = ("_cohorts", "anchor", "cause", "cause_t", "checkpointed", "clock", "cohort_values", "duplicates",
                 "escalations", "fairness", "followup_dispersion", "followups", "frozen", "ids", "integrity",
                 "isolation", "last_hash", "last_receipt_t", "last_review", "ledger", "limits", "mission_id", "mix",
                 "n_actions", "n_outcomes", "new_problems", "novelty", "parts", "pending_outcomes", "plan",
                 "population", "recent_cohorts", "recent_mix", "registration", "registration_hash",
                 "resume_approvals", "review_status", "risk", "seq", "shift_affected", "shift_events", "spec",
                 "state", "subjects", "tree", "window_actions", "window_cohorts", "window_from", "window_mix",
                 "window_to")
    """A mission's attributes (no instance dict: past 30 attributes it would be a full dict of its own)."""

    fairness: dict[str, tuple[FairnessDelta, ...]]
    risk: dict[str, tuple[RiskSignal, ...]]
    limits: dict[str, tuple[HardLimit, ...]]
    novelty: dict[str, NoveltyWatch]
    mix: dict[str, MixShift]
    followups: dict[str, FollowupPressure]
    followup_dispersion: Dispersion
    isolation: Isolation | None
    """Isolated contacts, for outcomes that name no action (when the spec has `[outcomes] within`)."""

    def __init__(self, mission_id: str, spec: Spec, plan: Plan, registration: MissionRecord | None,
                 registration_hash: str | None, anchor: float | None = None) -> None:
        self.mission_id, self.spec, self.plan = mission_id, spec, plan
        self.registration = Registration.of(registration) if registration is not None else None
        self.registration_hash = registration_hash
        self.ledger = Ledger(spec.bucket_seconds, plan.dims, spec.open_seconds)
        self.seq = 0
        self.last_hash: str | None = None
        self.tree = MerkleTree()
        """The mission's transparency log: a leaf per out record, in seq order (missionwatch.tlog)."""
        self.checkpointed = 0
        """The tree size of its latest checkpoint."""
        self.state: StateName = "running"
        self.cause: str | None = None
        self.cause_t: float | None = None
        self.anchor = registration.started_at if registration else anchor
        """The mission's start: event times are plausible within a window around it."""
        self.clock: float | None = None
        """The chain's event time: the latest issued_at; out records never go back before it."""
        self.cohort_values: dict[str, dict[str, int]] = {d: {} for d in plan.dims}
        """Records seen per normalised value of each cohort attribute (at most max_values)."""
        self.parts: dict[str, tuple[str, ...]] = {}
        """Per intersection cohort ('segment+tenure_band=smb+m4-12'), the cohorts it joins."""
        self.integrity: dict[str, dict[str, Any]] = {}
        """Per cohort attribute, what was wrong with its values (see `cohort_of`)."""
        self.new_problems: list[str] = []
        """Cohort attributes whose integrity problem appeared with the record being judged."""
        self.n_actions = self.n_outcomes = self.duplicates = 0
        self.subjects: dict[str, Subject] = {}
        self._cohorts: dict[tuple[tuple[str, str], ...], dict[str, str]] = {}
        self.pending_outcomes: dict[str, list[tuple[float, str, float]]] = {}
        self.ids = IdTable()
        """Every accepted receipt, outcome and review id, with its content digest; an action's
        flags say whether it was a contact and in the baseline (for outcomes that name it)."""
        self.escalations: dict[str, EscalationEntry] = {}
        self.last_review: dict[str, Any] | None = None
        """The latest accepted review: who, when, what and why (the receipts show it)."""
        self.resume_approvals: dict[str, list[tuple[str, str | None]]] = {}
        """Per pausing escalation, the (reviewer, key_id) of each resume that approved releasing
        it while the spec's `resume_reviewers` were not yet reached."""
        self.frozen = False
        _detectors(self, spec, plan)
        self.shift_events = Latest(SHIFT_EVENTS_KEPT)
        """The latest shift events, as receipts show them."""
        self.shift_affected = NO_SCOPES
        """Cohorts named by any shift event so far (follow-up pressure, hard limits)."""
        self.window_from: float | None = None
        self.window_to: float | None = None
        self.window_actions = 0
        self.window_mix: Counter[str] = Counter()
        self.window_cohorts: Counter[str] = Counter()
        """Contact actions of the receipt window per `attribute=value` of their subject's cohort."""
        self.recent_mix: Counter[str] = Counter()
        self.recent_cohorts: Counter[str] = Counter()
        """The latest receipt window with actions: what `tactics` and `cohort_concentration`
        read while the current window is empty."""
        self.population: Counter[str] = Counter()
        """Contacted subjects per `attribute=value` of their cohort."""
        self.last_receipt_t: float | None = None
        self.review_status = "continue"

    @property
    def registered(self) -> bool:
        return self.registration is not None

    def seen(self, kind: str, key: str, h: str) -> bool:
        """True for an identical duplicate in the mission, False for a new id; raise for a
        conflicting one. Ids are unique within their mission: the mission is the unit a stream
        partitions by, so this is the uniqueness a streaming worker can check."""
        prev = self.ids.get(kind, key)
        if prev is None:
            return False
        if prev[0] == content_digest(h):
            return True
        raise Reject("conflicting_duplicate",
                     f"{_ID_KINDS[kind]} {key!r} was already accepted with different content "
                     f"(this one is {h}); the first one stands")

    def phase_of(self, receipt_id: str) -> str | None:
        """'baseline' or 'post' for a contact action of this mission, else None."""
        found = self.ids.get("r", receipt_id)
        if found is None or not found[1] & CONTACT:
            return None
        return "baseline" if found[1] & BASELINE else "post"

    def followup_detector(self, key: str) -> FollowupPressure:
        fp = self.followups.get(key)
        if fp is None:
            s = self.spec.shift
            key = sys.intern(key)  # one copy of each cohort's key, whatever the missions
            fp = self.followups[key] = FollowupPressure(key, self.plan.followup_rises, s.alpha, self.followup_dispersion,
                                                        passive=key.split("=", 1)[0] in self.plan.intersections)
            if self.frozen:
                fp.freeze(self._followup_fallback())
        return fp

    def _followup_fallback(self) -> tuple[int, int] | None:
        overall = self.followups.get("*")
        return overall.baseline if overall else None

    def freeze(self) -> None:
        """End the baseline: the shift detectors compare with what they saw so far."""
        self.frozen = True
        for w in self.novelty.values():
            w.freeze()
        for mx in self.mix.values():
            mx.freeze()
        fallback = self._followup_fallback()
        for fp in self.followups.values():
            fp.freeze(fallback)

    def cohort_of(self, raw: dict[str, str] | None) -> dict[str, str]:
        """The record's cohort as the mission counts it: each cohort attribute of the spec
        (`keys` and `protected`) normalised (`spec.normalize_value`), each intersection joined from
        its parts' normalised values; a value the spec does not declare becomes
        '(undeclared)', a value past the attribute's `max_values` becomes '(other)', and
        either is an integrity problem of the attribute (see `note_problem`)."""
        if not raw:
            return {}
        out = dict(raw)  # attributes the spec does not name are kept as they came
        cohorts, joined = self.spec.cohorts, self.plan.intersections
        for d in self.plan.dims:
            v = raw.get(d)
            if v is None:
                continue
            v = normalize_value(v, cohorts.case) if d not in joined else ""
            if v:
                out[d] = self._count_value(d, v)
            else:
                del out[d]
        for d, parts in joined.items():
            if all(p in out for p in parts):
                v = out[d] = self._count_value(d, "+".join(out[p] for p in parts))
                if v not in (UNDECLARED, OTHER):
                    self.parts.setdefault(f"{d}={v}", tuple(f"{p}={out[p]}" for p in parts))
        return out

    def _count_value(self, d: str, v: str) -> str:
        cohorts, declared, seen = self.spec.cohorts, self.plan.declared[d], self.cohort_values[d]
        if declared is not None and v not in declared:
            self.note_problem(d, "undeclared", v)
            v = UNDECLARED
        elif v not in seen and len(seen) >= cohorts.max_values:
            self.note_problem(d, "too_many_values", v)
            v = OTHER
        if v not in seen and d in self.plan.protected and declared is None \
                and v not in (UNDECLARED, OTHER) and len(seen) >= cohorts.max_cohorts:
            self.note_problem(d, "over_budget", v)
        v = sys.intern(v)  # one copy of each value, whatever the missions and records
        seen[v] = seen.get(v, 0) + 1
        return v

    def intern(self, cohort: dict[str, str]) -> dict[str, str]:
        """One shared dict per distinct cohort: subjects hold it, never change it (tens of
        thousands of subjects share a few dozen cohorts). Shared by the spec's missions through
        its plan while the plan keeps fewer than `Plan.COHORTS_KEPT`, then kept per mission."""
        key = tuple(sorted(cohort.items()))
        shared = self.plan.cohorts
        found = shared.get(key)
        if found is None:
            found = self._cohorts.get(key)
        if found is None:
            table = shared if len(shared) < self.plan.COHORTS_KEPT else self._cohorts
            found = table[key] = dict(cohort)
        return found

    def acknowledge(self, escalation_id: str | None) -> None:
        """A review acknowledged (or resumed) the escalation, or all of them: close it, and re-arm
        the shift detectors (what they saw while latched becomes their new baseline)."""
        for eid in [escalation_id] if escalation_id else list(self.escalations):
            if eid in self.escalations:
                self.escalations[eid].open = False
        for mx in self.mix.values():
            mx.rearm()
        for fp in self.followups.values():
            fp.rearm()

    def note_problem(self, dim: str, problem: str, value: str) -> None:
        """Note an unexpected value of a cohort attribute; the first of each attribute is judged
        (escalated) with the record that brought it."""
        entry = self.integrity.get(dim)
        if entry is None:
            entry = self.integrity[dim] = {"problems": [], "values": {}, "records": 0}
            self.new_problems.append(dim)
        if problem not in entry["problems"]:
            entry["problems"].append(problem)
        entry["records"] += 1
        values: dict[str, int] = entry["values"]
        if value in values or len(values) < INTEGRITY_SAMPLE:
            values[value] = values.get(value, 0) + 1
