"""The functional core: `Monitor.feed(record) -> Step`.

Records in, out records back. No I/O, no wall clock: time is the records' own
event time. The replay command, the streaming service and the tests all drive
this one class, so a stream and a replay of the same records give the same
ledger, the same verdicts and byte-identical out records.

`Step.out` holds the out records issued for the input, in order (escalations,
then a control signal, then a strategy receipt), each chained and signed per
mission. `Step.rejected` says why an input, or an item of a batch, was refused;
`Step.accepted` lists what entered the ledger (duplicates flagged).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from .admission import DEFAULT_LIMITS, Limits, excerpt
from .codes import EscalationCode, RejectionCode, escalation_reason, reject_reason
from .core.idset import IdTable, content_digest
from .detect import (
    FairnessDelta,
    FollowupPressure,
    HardLimit,
    MixShift,
    NoveltyWatch,
    RiskSignal,
    ShiftEvent,
)
from .detect.fairness import CohortVerdict
from .intake import Intake, Prepared, Reject, Signatures
from .ledger import NONE, Ledger
from .records import (
    IN_SCHEMAS,
    SCHEMA_BATCH,
    SCHEMA_CONTROL,
    SCHEMA_ESCALATION,
    SCHEMA_STRATEGY,
    ActionRecord,
    BatchEnvelope,
    MissionRecord,
    OutcomeRecord,
    ReviewRecord,
    describe_validation_error,
    format_time,
)
from .signing import ROLE_FOR_SCHEMA, Keyring, Signer, VerifyFailure
from .spec import MetricSpec, Spec, SpecRegistry, normalize_value, parse_duration
from .stats.cs import e_bh

__all__ = ["Accepted", "MissionState", "Monitor", "Prepared", "Rejection", "Step"]

MissionStateName = Literal["running", "paused", "terminated"]


@dataclass(frozen=True)
class Rejection:
    code: RejectionCode
    reason: str
    item: int | None = None
    """Index of the item within a batch envelope; None for a whole message."""
    record: str | None = None
    """For an item of a batch: a bounded excerpt of the item (the shell keeps a bounded
    excerpt of the whole message otherwise; see `Monitor.rejection_row`)."""


@dataclass(frozen=True)
class Accepted:
    kind: Literal["mission", "action", "outcome", "review"]
    record: dict[str, Any]
    model: BaseModel
    hash: str
    key_id: str | None
    batch_hash: str | None
    duplicate: bool


@dataclass
class Step:
    out: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    accepted: list[Accepted] = field(default_factory=list)


@dataclass(slots=True)
class Subject:
    cohort: dict[str, str]
    contacted: bool = False
    phase: str = "baseline"
    counts: dict[str, int] = field(default_factory=dict)


@dataclass
class _Escalation:
    severity: str
    open: bool = True
    t: float = 0.0
    """When it was issued (its issued_at): a review of it may not be dated earlier."""


class _Plan:
    """How one spec routes records to metrics and detectors; built once per spec."""

    def __init__(self, spec: Spec, n_tests: int) -> None:
        self.spec = spec
        self.dims = tuple(spec.cohorts.keys) + tuple(spec.cohorts.protected)
        self.contact = set(spec.actions.contact)
        self.followup = set(spec.actions.followup)
        self.action_metrics: dict[str, list[MetricSpec]] = {}
        self.all_action_metrics: list[MetricSpec] = []
        self.count_actions: dict[str, list[MetricSpec]] = {}
        self.count_outcomes: dict[str, list[MetricSpec]] = {}
        self.subject_metrics = [m for m in spec.metrics if m.per == "subject"]
        for m in spec.metrics:
            if m.per == "action":
                if m.actions:
                    for a in m.actions:
                        self.action_metrics.setdefault(a, []).append(m)
                else:
                    self.all_action_metrics.append(m)
            for a in m.count_actions:
                self.count_actions.setdefault(a, []).append(m)
            for o in m.count_outcomes:
                self.count_outcomes.setdefault(o, []).append(m)
        self.skew = parse_duration(spec.spec.skew)
        self.horizon = parse_duration(spec.spec.horizon)
        self.declared = {d: spec.cohorts.normal_values(d) for d in self.dims}
        self.protected = frozenset(spec.cohorts.protected)
        self.n_tests = max(n_tests, 1)
        self.fairness_alpha = spec.spec.alpha / self.n_tests
        self.risk_alpha = spec.spec.alpha / max(len(spec.risk), 1)


def _scopes(hl: HardLimit, plan: _Plan, cohort: dict[str, str]) -> list[str]:
    """Where a limit looks: the whole mission, or each cohort the observation belongs to."""
    if hl.rule.scope == "mission":
        return ["mission"]
    return [f"{d}={cohort.get(d, NONE)}" for d in plan.dims]


SHIFT_EVENTS_KEPT = 50
CONTACT, BASELINE = 1, 2
"""Flags of an action's id: it contacted its subject; it was among the baseline actions."""
UNDECLARED = "(undeclared)"
OTHER = "(other)"
INTEGRITY_SAMPLE = 20
"""Distinct unexpected values an integrity report lists per attribute (all are counted)."""


def _internal(exc: Exception) -> Rejection:
    """A rejection for what the core raised on one message: its type and a short message."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    reason = reject_reason("internal_error", f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
    return Rejection("internal_error", reason)


def _fmt(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.3g}"


def _num(x: float) -> float | None:
    return round(x, 6) if math.isfinite(x) else None


class MissionState:
    """Everything the core knows of one mission. Picklable."""

    def __init__(self, mission_id: str, spec: Spec, plan: _Plan, registration: MissionRecord | None,
                 registration_hash: str | None) -> None:
        self.mission_id = mission_id
        self.spec = spec
        self.plan = plan
        self.registration = registration
        self.registration_hash = registration_hash
        self.ledger = Ledger(spec.bucket_seconds, plan.dims)
        self.seq = 0
        self.last_hash: str | None = None
        self.state: MissionStateName = "running"
        self.cause: str | None = None
        self.cause_t: float | None = None
        self.anchor: float | None = registration.started_at if registration else None
        """The mission's start: event times are plausible within [anchor - skew, anchor + horizon]."""
        self.clock: float | None = None
        """The chain's event time: the latest issued_at; out records never go back before it."""
        self.cohort_values: dict[str, dict[str, int]] = {d: {} for d in plan.dims}
        """Records seen per normalised value of each cohort attribute (at most max_values)."""
        self.integrity: dict[str, dict[str, Any]] = {}
        """Per cohort attribute, what was wrong with its values (see `Monitor._cohort_of`)."""
        self.new_problems: list[str] = []
        """Cohort attributes whose integrity problem appeared with the record being judged."""
        self.n_actions = 0
        self.n_outcomes = 0
        self.duplicates = 0
        self.subjects: dict[str, Subject] = {}
        self.pending_outcomes: dict[str, list[tuple[float, str, float]]] = {}
        self.ids = IdTable()
        """Every accepted receipt, outcome and review id, with its content digest; an action's
        flags say whether it was a contact and in the baseline (for outcomes that name it)."""
        self.escalations: dict[str, _Escalation] = {}
        self.frozen = False
        c = spec.cohorts
        self.fairness: dict[str, list[FairnessDelta]] = {}
        for rule in spec.fairness:
            for proxy in c.protected:
                fd = FairnessDelta(rule, proxy, plan.fairness_alpha, c.min_samples, c.max_cohorts,
                                   strict=spec.spec.intervals == "strict")
                self.fairness.setdefault(rule.metric, []).append(fd)
        self.risk: dict[str, list[RiskSignal]] = {}
        for r in spec.risk:
            self.risk.setdefault(r.metric, []).append(RiskSignal(r, plan.risk_alpha, c.min_samples))
        self.limits: dict[str, list[HardLimit]] = {}
        for lim in spec.limits:
            self.limits.setdefault(lim.metric, []).append(HardLimit(lim))
        self.novelty = {"template": NoveltyWatch("template", "new_template"),
                        "action_type": NoveltyWatch("action_type", "new_action_type")}
        for d in plan.dims:
            self.novelty[f"cohort:{d}"] = NoveltyWatch(d, "new_cohort")
        s = spec.shift
        self.mix = {"action_type": MixShift("action_type", s.alpha, s.mix_rises),
                    "template": MixShift("template", s.alpha, s.mix_rises)}
        self.followups: dict[str, FollowupPressure] = {}
        self.shift_events: deque[dict[str, Any]] = deque(maxlen=SHIFT_EVENTS_KEPT)
        """The latest shift events, as receipts show them."""
        self.shift_affected: set[str] = set()
        """Cohorts named by any shift event so far (follow-up pressure, hard limits)."""
        # strategy-receipt window
        self.window_from: float | None = None
        self.window_to: float | None = None
        self.window_actions = 0
        self.window_mix: Counter[str] = Counter()
        self.last_receipt_t: float | None = None
        self.review_status = "continue"

    @property
    def registered(self) -> bool:
        return self.registration is not None

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
            fp = self.followups[key] = FollowupPressure(key, s.followup_rises, s.alpha)
            if self.frozen:
                overall = self.followups.get("*")
                fp.freeze((overall.n0, overall.k0) if overall else None)
        return fp


class Monitor:
    """The monitoring core. Feed it records in arrival order; it returns what to emit."""

    def __init__(
        self,
        specs: SpecRegistry,
        *,
        signer: Signer,
        keyring: Keyring | None = None,
        allow_unsigned: bool = False,
        limits: Limits = DEFAULT_LIMITS,
    ) -> None:
        self.specs = specs
        self.signer = signer
        self.limits = limits
        self.intake = Intake(keyring or Keyring(), limits)
        self.allow_unsigned = allow_unsigned
        self.missions: dict[str, MissionState] = {}
        self._plans: dict[str, _Plan] = {}
        self.counts: Counter[str] = Counter()

    @property
    def keyring(self) -> Keyring:
        return self.intake.keyring

    # ------------------------------------------------------------------ input
    def feed(self, raw: str | bytes | dict[str, Any] | Prepared) -> Step:
        """Take one message (a record or a batch envelope); return what it caused.

        `raw` may be what `prepare` returned for it, from any thread.
        """
        step = Step()
        try:
            p = raw if isinstance(raw, Prepared) else self.prepare(raw)
            if p.reject is not None:
                raise p.reject
            assert p.record is not None and p.payload is not None
            if p.schema == SCHEMA_BATCH:
                self._feed_batch(p, step)
            else:
                self._feed_one(p, step, None, None)
        except Reject as exc:
            step.rejected.append(Rejection(exc.code, exc.reason))
        except Exception as exc:  # a poison message must never stop the monitor
            step.rejected.append(_internal(exc))
        for rejection in step.rejected:
            self.counts[f"rejected:{rejection.code}"] += 1
        return step

    def rejection_row(self, r: Rejection, message: str | bytes) -> dict[str, Any]:
        """What rejected.jsonl and the rejected topic keep of a rejection: code, reason, the item
        index, and a bounded excerpt of the offending item or message (never the whole of a
        large message, never a copy of it per item)."""
        row: dict[str, Any] = {"code": r.code, "reason": r.reason}
        if r.item is not None:
            row["item"] = r.item
        if r.record is not None:
            row["record"] = r.record
        else:
            if isinstance(message, str):
                message = message.rstrip("\r\n")
            elif isinstance(message, bytes | bytearray):
                message = bytes(message).rstrip(b"\r\n")
            row["record"] = excerpt(message, self.limits.excerpt_chars)
        return row

    def prepare(self, raw: str | bytes | dict[str, Any], signatures: Signatures | None = None) -> Prepared:
        """The stateless half of `feed` (see `Intake.prepare`): decode, canonicalize and
        check signatures. It may run ahead of `feed` on other threads; `feed(prepare(x))`
        equals `feed(x)`."""
        return self.intake.prepare(raw, signatures)

    def _feed_batch(self, p: Prepared, step: Step) -> None:
        assert p.record is not None and p.payload is not None
        try:
            batch = BatchEnvelope.model_validate(p.record)
        except ValidationError as exc:
            raise Reject("invalid_field", describe_validation_error(SCHEMA_BATCH, exc)) from None
        if not batch.items:
            raise Reject("empty_batch")
        batch_key: tuple[str, str] | None = None
        if isinstance(p.signer, VerifyFailure):
            if p.signer.code == "bad_signature":
                raise Reject("bad_batch_signature", p.signer.detail)
            raise Reject(p.signer.code, p.signer.detail)
        if p.signer is not None:
            role = self.keyring.role_of(p.signer)
            assert role is not None
            batch_key = (p.signer, role)
        missions = sorted({str(i.get("mission_id")) for i in batch.items
                           if isinstance(i, dict) and isinstance(i.get("mission_id"), str)})
        if len(missions) > 1:
            shown = ", ".join(repr(m[:80]) for m in missions[:5])
            raise Reject("mixed_batch", f"{len(missions)} missions ({shown}{', ...' if len(missions) > 5 else ''})")
        batch_hash = "sha256:" + hashlib.sha256(p.payload).hexdigest()
        for i, item in enumerate(p.items):
            try:
                if item.reject is not None:
                    raise item.reject
                self._feed_one(item, step, batch_key, batch_hash)
            except Reject as r:
                step.rejected.append(Rejection(r.code, r.reason, item=i, record=self._item_excerpt(batch.items[i])))
            except Exception as exc:  # one poison item rejects that item only
                rej = _internal(exc)
                step.rejected.append(Rejection(rej.code, rej.reason, item=i,
                                               record=self._item_excerpt(batch.items[i])))

    def _item_excerpt(self, item: Any) -> str:
        try:
            text = json.dumps(item, ensure_ascii=False, separators=(",", ":"), allow_nan=True)
        except (TypeError, ValueError, RecursionError):
            text = repr(item)[: self.limits.excerpt_chars * 2]
        return excerpt(text, self.limits.excerpt_chars)

    def _feed_one(self, p: Prepared, step: Step, batch_key: tuple[str, str] | None,
                  batch_hash: str | None) -> None:
        record, payload, schema = p.record, p.payload, p.schema
        assert record is not None and payload is not None and schema is not None
        try:
            model = IN_SCHEMAS[schema].model_validate(record)
        except ValidationError as exc:
            raise Reject("invalid_field", describe_validation_error(schema, exc)) from None
        role = ROLE_FOR_SCHEMA[schema]
        key_id: str | None
        if p.signer is None and batch_key is not None:
            key_id, batch_role = batch_key
            if batch_role != role:
                raise Reject("wrong_role", f"the batch is signed by {key_id!r} with role {batch_role!r}, "
                              f"but a {schema} record must be signed by a {role!r} key")
        elif p.signer is None:
            if not self.allow_unsigned:
                raise Reject("signature_missing")
            key_id = None
        elif isinstance(p.signer, VerifyFailure):
            raise Reject(p.signer.code, p.signer.detail)
        else:
            key_id = p.signer
        if isinstance(model, ActionRecord | OutcomeRecord | ReviewRecord):
            self._check_time(model.mission_id, model.occurred_at, schema)
        h = "sha256:" + hashlib.sha256(payload).hexdigest()
        if isinstance(model, ActionRecord):
            self._on_action(model, record, h, key_id, batch_hash, step)
        elif isinstance(model, OutcomeRecord):
            self._on_outcome(model, record, h, key_id, batch_hash, step)
        elif isinstance(model, ReviewRecord):
            self._on_review(model, record, h, key_id, batch_hash, step)
        elif isinstance(model, MissionRecord):
            self._on_mission(model, record, h, key_id, batch_hash, step)

    def _check_time(self, mission_id: str, t: float, schema: str) -> None:
        """Refuse an event time outside the mission's plausible window."""
        ms = self.missions.get(mission_id)
        if ms is None or ms.anchor is None:
            return
        what = schema.removeprefix("missionwatch/").split("@")[0]
        # a registration declares the start; an unregistered mission's first record only hints
        # at it (an earlier-dated record may come next), so it gets the horizon both ways
        back = (ms.plan.skew, ms.spec.spec.skew) if ms.registered else (ms.plan.horizon, ms.spec.spec.horizon)
        if t < ms.anchor - back[0]:
            started = "started" if ms.registered else "first record was dated"
            raise Reject("implausible_time", f"the {what} is dated {format_time(t)}, more than "
                         f"{back[1]} before mission {mission_id!r} {started} ({format_time(ms.anchor)})")
        if t > ms.anchor + ms.plan.horizon:
            raise Reject("implausible_time", f"the {what} is dated {format_time(t)}, more than "
                         f"{ms.spec.spec.horizon} after mission {mission_id!r} started "
                         f"({format_time(ms.anchor)}); the spec's horizon bounds how far ahead "
                         "a record may be dated")

    # ---------------------------------------------------------------- missions
    def _plan(self, spec: Spec) -> _Plan:
        plan = self._plans.get(spec.name)
        if plan is None:
            n_tests = 0
            for rule in spec.fairness:
                k = sum(v is not None for v in (rule.max_gap, rule.min_ratio, rule.max_ratio))
                n_tests += len(spec.cohorts.protected) * spec.cohorts.max_cohorts * (k > 0)
            plan = self._plans[spec.name] = _Plan(spec, n_tests)
        return plan

    def _mission(self, mission_id: str, t: float) -> MissionState:
        """The mission's state; an unregistered mission starts (its anchor) at its first record."""
        ms = self.missions.get(mission_id)
        if ms is None:
            spec = self.specs.default
            ms = self.missions[mission_id] = MissionState(mission_id, spec, self._plan(spec), None, None)
            ms.anchor = t
        return ms

    @staticmethod
    def _seen(ms: MissionState, kind: str, key: str, h: str) -> bool:
        """True for an identical duplicate in the mission, False for a new id; raise for a
        conflicting one. Ids are unique within their mission: the mission is the unit a stream
        partitions by, so this is the uniqueness a streaming worker can check."""
        prev = ms.ids.get(kind, key)
        if prev is None:
            return False
        if prev[0] == content_digest(h):
            return True
        what = {"r": "receipt_id", "o": "outcome_id", "v": "review_id"}[kind]
        raise Reject("conflicting_duplicate",
                      f"{what} {key!r} was already accepted with different content "
                      f"(this one is {h}); the first one stands")

    def _on_mission(self, m: MissionRecord, record: dict[str, Any], h: str, key_id: str | None,
                    batch_hash: str | None, step: Step) -> None:
        ms = self.missions.get(m.mission_id)
        if ms is not None:
            if ms.registration_hash == h:
                ms.duplicates += 1
                step.accepted.append(Accepted("mission", record, m, h, key_id, batch_hash, True))
                return
            if ms.registered:
                raise Reject("conflicting_registration", repr(m.mission_id))
            raise Reject("late_registration",
                          f"mission {m.mission_id!r} already has records monitored under the spec "
                          f"'default'; a mission must be registered before its first record")
        spec = self.specs.get(m.spec)
        if spec is None:
            raise Reject("unknown_spec", f"field spec names {m.spec!r}, which is not a spec in the "
                          f"specs directory (known: {', '.join(sorted(self.specs.specs))})")
        self.missions[m.mission_id] = MissionState(m.mission_id, spec, self._plan(spec), m, h)
        step.accepted.append(Accepted("mission", record, m, h, key_id, batch_hash, False))

    # ----------------------------------------------------------------- actions
    def _on_action(self, a: ActionRecord, record: dict[str, Any], h: str, key_id: str | None,
                   batch_hash: str | None, step: Step) -> None:
        ms = self._mission(a.mission_id, a.occurred_at)
        if self._seen(ms, "r", a.receipt_id, h):
            ms.duplicates += 1
            step.accepted.append(Accepted("action", record, a, h, key_id, batch_hash, True))
            return
        plan, spec, t = ms.plan, ms.spec, a.occurred_at
        is_contact = not plan.contact or a.action_type in plan.contact
        ms.ids.put("r", a.receipt_id, content_digest(h),
                   (CONTACT if is_contact else 0) | (BASELINE if ms.n_actions < spec.baseline.actions else 0))
        step.accepted.append(Accepted("action", record, a, h, key_id, batch_hash, False))
        cohort = self._cohort_of(ms, a.subject.cohort)
        phase = "baseline" if ms.n_actions < spec.baseline.actions else "post"
        ms.n_actions += 1
        events: list[ShiftEvent] = []

        # subject and ledger
        subj = ms.subjects.get(a.subject.id)
        if subj is None:
            subj = ms.subjects[a.subject.id] = Subject(dict(cohort))
            for ot, ov, oval in ms.pending_outcomes.pop(a.subject.id, []):
                ms.ledger.add_outcome(ot, subj.cohort, ov, oval)
        elif not subj.cohort and cohort:
            subj.cohort = dict(cohort)
            for ot, ov, oval in ms.pending_outcomes.pop(a.subject.id, []):
                ms.ledger.add_outcome(ot, subj.cohort, ov, oval)
        new_contact = not subj.contacted and (not plan.contact or a.action_type in plan.contact)
        attrs = a.attributes
        tattr = attrs.get(spec.actions.template_attribute)
        template = tattr if isinstance(tattr, str) else None
        numbers = {k: float(v) for k, v in attrs.items()
                   if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}
        ms.ledger.add_action(t, cohort, a.action_type, a.decision, template, numbers, new_contact)

        touched: set[tuple[FairnessDelta, str]] = set()
        touched_risk: set[RiskSignal] = set()
        breaches: list[tuple[HardLimit, Any]] = []

        def observe(m: MetricSpec, coh: dict[str, str], ph: str, x: float, prev: float | None) -> None:
            for fd in ms.fairness.get(m.name, ()):
                v = coh.get(fd.proxy, NONE)
                fd.update(v, x, prev=prev, t=t)
                touched.add((fd, v))
            if m.per == "action":
                for rs in ms.risk.get(m.name, ()):
                    rs.update(x, phase=ph, prev=prev, t=t)
                    touched_risk.add(rs)
            for hl in ms.limits.get(m.name, ()):
                breaches.extend((hl, b) for b in hl.update(_scopes(hl, plan, coh), x, prev=prev, t=t))

        # per-action metrics
        for m in [*plan.action_metrics.get(a.action_type, ()), *plan.all_action_metrics]:
            if m.attribute is not None:
                x = numbers.get(m.attribute)
                if x is None:
                    continue
            else:
                x = 1.0 if a.decision in m.decisions else 0.0
            observe(m, cohort, phase, x, None)
        # per-subject counts
        for m in plan.count_actions.get(a.action_type, ()):
            k = subj.counts.get(m.name, 0)
            subj.counts[m.name] = k + 1
            if subj.contacted:
                observe(m, subj.cohort, subj.phase, k + 1, k)
        if new_contact:
            subj.contacted = True
            subj.phase = phase
            for m in plan.subject_metrics:
                observe(m, subj.cohort, phase, subj.counts.get(m.name, 0), None)
        if is_contact:
            for m in plan.subject_metrics:
                for rs in ms.risk.get(m.name, ()):
                    rs.update(0.0, phase=phase, t=t)
                    touched_risk.add(rs)
        for m in plan.count_actions.get(a.action_type, ()):
            for rs in ms.risk.get(m.name, ()):
                rs.update(1.0, phase=phase, prev=0.0, t=t)
                touched_risk.add(rs)

        # strategy shift
        nov = ms.novelty
        if template is not None:
            events.append(nov["template"].update(template, t))  # type: ignore[arg-type]
        events.append(nov["action_type"].update(a.action_type, t))  # type: ignore[arg-type]
        for d in plan.dims:
            if d in cohort:
                events.append(nov[f"cohort:{d}"].update(f"{d}={cohort[d]}", t))  # type: ignore[arg-type]
        events.append(ms.mix["action_type"].update(a.action_type, t))  # type: ignore[arg-type]
        if template is not None:
            events.append(ms.mix["template"].update(template, t))  # type: ignore[arg-type]
        is_fu = a.action_type in plan.followup
        if plan.followup:
            events.append(ms.followup_detector("*").update(is_fu, t))  # type: ignore[arg-type]
            for d in plan.dims:
                events.append(ms.followup_detector(f"{d}={cohort.get(d, NONE)}").update(is_fu, t))  # type: ignore[arg-type]
        if not ms.frozen and ms.n_actions >= spec.baseline.actions:
            self._freeze(ms)

        ms.window_from = t if ms.window_from is None else min(ms.window_from, t)
        ms.window_to = t if ms.window_to is None else max(ms.window_to, t)
        ms.window_actions += 1
        ms.window_mix[a.action_type + (f"+{template}" if template else "")] += 1
        self._judge(ms, a.receipt_id, t, touched, touched_risk, breaches,
                    [e for e in events if e is not None], step)

    def _cohort_of(self, ms: MissionState, raw: dict[str, str] | None) -> dict[str, str]:
        """The record's cohort as the mission counts it: each cohort attribute of the spec,
        normalised (`spec.normalize_value`); a value the spec does not declare becomes
        '(undeclared)', a value past the attribute's `max_values` becomes '(other)', and
        either is an integrity problem of the attribute (see `_problem`)."""
        out: dict[str, str] = {}
        if not raw:
            return out
        cohorts = ms.spec.cohorts
        for d in ms.plan.dims:
            v = raw.get(d)
            if v is None:
                continue
            v = normalize_value(v, cohorts.case)
            if not v:
                continue
            declared = ms.plan.declared[d]
            seen = ms.cohort_values[d]
            if declared is not None and v not in declared:
                self._problem(ms, d, "undeclared", v)
                v = UNDECLARED
            elif v not in seen and len(seen) >= cohorts.max_values:
                self._problem(ms, d, "too_many_values", v)
                v = OTHER
            if v not in seen and d in ms.plan.protected and declared is None \
                    and v not in (UNDECLARED, OTHER) and len(seen) >= cohorts.max_cohorts:
                self._problem(ms, d, "over_budget", v)
            seen[v] = seen.get(v, 0) + 1
            out[d] = v
        return out

    @staticmethod
    def _problem(ms: MissionState, dim: str, problem: str, value: str) -> None:
        """Note an unexpected value of a cohort attribute; the first of each attribute is judged
        (escalated) with the record that brought it."""
        entry = ms.integrity.get(dim)
        if entry is None:
            entry = ms.integrity[dim] = {"problems": [], "values": {}, "records": 0}
            ms.new_problems.append(dim)
        if problem not in entry["problems"]:
            entry["problems"].append(problem)
        entry["records"] += 1
        values: dict[str, int] = entry["values"]
        if value in values or len(values) < INTEGRITY_SAMPLE:
            values[value] = values.get(value, 0) + 1

    def _freeze(self, ms: MissionState) -> None:
        ms.frozen = True
        for w in ms.novelty.values():
            w.freeze()
        for mx in ms.mix.values():
            mx.freeze()
        overall = ms.followups.get("*")
        fallback = (overall.n0, overall.k0) if overall else None
        for fp in ms.followups.values():
            fp.freeze(fallback)

    # ---------------------------------------------------------------- outcomes
    def _on_outcome(self, o: OutcomeRecord, record: dict[str, Any], h: str, key_id: str | None,
                    batch_hash: str | None, step: Step) -> None:
        ms = self._mission(o.mission_id, o.occurred_at)
        if self._seen(ms, "o", o.outcome_id, h):
            ms.duplicates += 1
            step.accepted.append(Accepted("outcome", record, o, h, key_id, batch_hash, True))
            return
        ms.ids.put("o", o.outcome_id, content_digest(h))
        step.accepted.append(Accepted("outcome", record, o, h, key_id, batch_hash, False))
        ms.n_outcomes += 1
        t = o.occurred_at
        subj = ms.subjects.get(o.subject.id)
        own = self._cohort_of(ms, o.subject.cohort) if o.subject.cohort else None
        if own:
            ms.ledger.add_outcome(t, own, o.outcome_type, o.value)
        elif subj is not None and (subj.cohort or subj.contacted):
            ms.ledger.add_outcome(t, subj.cohort, o.outcome_type, o.value)
        else:
            ms.pending_outcomes.setdefault(o.subject.id, []).append((t, o.outcome_type, o.value))
        if subj is None:
            subj = ms.subjects[o.subject.id] = Subject(dict(own) if own else {})
        touched: set[tuple[FairnessDelta, str]] = set()
        touched_risk: set[RiskSignal] = set()
        breaches: list[tuple[HardLimit, Any]] = []
        follows = ms.phase_of(o.follows) if o.follows else None
        for m in ms.plan.count_outcomes.get(o.outcome_type, ()):
            if follows is not None:  # only an outcome that names its action has a phase
                for rs in ms.risk.get(m.name, ()):
                    rs.update(1.0, phase=follows, prev=0.0, t=t)
                    touched_risk.add(rs)
            k = subj.counts.get(m.name, 0)
            subj.counts[m.name] = k + 1
            if not subj.contacted:
                continue
            for fd in ms.fairness.get(m.name, ()):
                v = subj.cohort.get(fd.proxy, NONE)
                fd.update(v, k + 1, prev=k, t=t)
                touched.add((fd, v))
            for hl in ms.limits.get(m.name, ()):
                breaches.extend((hl, b) for b in hl.update(_scopes(hl, ms.plan, subj.cohort), k + 1, prev=k, t=t))
        self._judge(ms, o.outcome_id, t, touched, touched_risk, breaches, [], step)

    # ----------------------------------------------------------------- reviews
    def _on_review(self, r: ReviewRecord, record: dict[str, Any], h: str, key_id: str | None,
                   batch_hash: str | None, step: Step) -> None:
        ms = self.missions.get(r.mission_id)
        if ms is None:
            raise Reject("unknown_escalation", f"the review names mission {r.mission_id!r}, "
                          "which the monitor has no record of")
        if r.escalation_id is not None and r.escalation_id not in ms.escalations \
                and r.escalation_id != ms.cause:
            raise Reject("unknown_escalation", f"escalation {r.escalation_id!r} is not one of mission "
                          f"{r.mission_id!r}'s escalations")
        if self._seen(ms, "v", r.review_id, h):
            ms.duplicates += 1
            step.accepted.append(Accepted("review", record, r, h, key_id, batch_hash, True))
            return
        self._admit_review(ms, r, key_id)
        ms.ids.put("v", r.review_id, content_digest(h))
        step.accepted.append(Accepted("review", record, r, h, key_id, batch_hash, False))
        t = r.occurred_at
        if r.decision in ("acknowledge", "resume"):
            targets = [r.escalation_id] if r.escalation_id else list(ms.escalations)
            for eid in targets:
                if eid in ms.escalations:
                    ms.escalations[eid].open = False
            for mx in ms.mix.values():
                mx.rearm()
            for fp in ms.followups.values():
                fp.rearm()
        new_state: MissionStateName | None = None
        if r.decision == "resume" and ms.state == "paused":
            new_state = "running"
        elif r.decision == "pause" and ms.state == "running":
            new_state = "paused"
        elif r.decision == "terminate":
            new_state = "terminated"
        if new_state is not None:
            self._control(ms, new_state, r.review_id, t, step)
        self._receipt(ms, t, step)

    def _admit_review(self, ms: MissionState, r: ReviewRecord, key_id: str | None) -> None:
        """The rules a review must meet beyond its signature: the mission is not terminated; the
        signing key's scope covers the mission, the decision and the reviewer named; it is not
        dated before what it reviews; a resume names the cause it releases."""
        if ms.state == "terminated":
            raise Reject("mission_terminated", repr(r.mission_id))
        scope = self.keyring.scope_of(key_id)
        if not scope.covers_mission(r.mission_id):
            raise Reject("reviewer_out_of_scope", f"key {key_id!r} may review missions matching "
                         f"{', '.join(scope.missions or ())}, not {r.mission_id!r}")
        if scope.decisions is not None and r.decision not in scope.decisions:
            raise Reject("reviewer_out_of_scope", f"key {key_id!r} may decide {', '.join(scope.decisions)}, "
                         f"not {r.decision!r}")
        if scope.reviewer is not None and r.reviewer != scope.reviewer:
            raise Reject("reviewer_out_of_scope", f"key {key_id!r} belongs to reviewer {scope.reviewer!r}; "
                         f"a review it signs cannot name {r.reviewer!r}")
        esc = ms.escalations.get(r.escalation_id) if r.escalation_id else None
        reviewed = esc.t if esc is not None else (ms.cause_t if r.escalation_id == ms.cause else None)
        if reviewed is not None and r.occurred_at < reviewed:
            raise Reject("review_out_of_order", f"the review is dated {format_time(r.occurred_at)}, before "
                         f"{r.escalation_id!r} it reviews ({format_time(reviewed)})")
        if r.decision != "resume":
            return
        if ms.state == "paused" and r.escalation_id != ms.cause:
            raise Reject("resume_without_cause", f"mission {r.mission_id!r} is paused by {ms.cause!r}; a "
                         f"resume must name it as escalation_id (this one names {r.escalation_id!r})")
        if ms.state == "running" and (esc is None or not esc.open):
            raise Reject("resume_without_cause", f"mission {r.mission_id!r} is running and the resume "
                         f"names no open escalation (escalation_id {r.escalation_id!r})")

    # ------------------------------------------------------------------ verdicts
    def _judge(self, ms: MissionState, trigger: str, t: float,
               touched: set[tuple[FairnessDelta, str]], touched_risk: set[RiskSignal],
               breaches: list[tuple[HardLimit, Any]], events: list[ShiftEvent], step: Step) -> None:
        changed = False
        pause_cause: str | None = None
        for dim in ms.new_problems:
            changed = True
            eid = self._integrity_escalation(ms, dim, trigger, t, step)
            if eid is not None and ms.spec.cohorts.integrity == "pause":
                pause_cause = pause_cause or eid
        ms.new_problems.clear()
        for fd, cohort in sorted(touched, key=lambda p: (p[0].rule.metric, p[0].proxy, p[1])):
            if not fd.due(cohort):
                continue
            old = fd.verdict(cohort)
            new = fd.evaluate(cohort)
            opens = fd.escalates(cohort, new)
            if old is not None and old.verdict == new.verdict:
                continue
            if new.verdict == "beyond" or (old is not None and old.verdict == "beyond"):
                changed = True
            if opens and fd.rule.severity != "report":
                eid = self._fairness_escalation(ms, fd, new, trigger, t, step)
                if fd.rule.severity == "pause":
                    pause_cause = pause_cause or eid
        for rs in sorted(touched_risk, key=lambda r: (r.rule.metric, r.rule.statistic)):
            old_v = rs.verdict
            new_v = rs.evaluate()
            opens = rs.escalates()
            if old_v == new_v:
                continue
            if "elevated" in (old_v, new_v):
                changed = True
            if opens and rs.rule.severity != "report":
                m = ms.spec.metric(rs.rule.metric)
                ev = rs.to_json()
                reason = escalation_reason(
                    "risk_elevated", metric_label=m.title.capitalize(), value=_fmt(ev["value"]),
                    baseline=_fmt(ev["baseline"]), ratio=_fmt(ev["ratio"]), threshold=_fmt(rs.rule.max_ratio))
                eid = self._escalate(ms, rs.rule.severity, f"risk:{m.name}", "risk_elevated", reason,
                                     {"metric": m.name, **ev, "alpha": rs.alpha}, trigger, t, step)
                if rs.rule.severity == "pause":
                    pause_cause = pause_cause or eid
        for hl, b in breaches:
            changed = True
            m = ms.spec.metric(hl.rule.metric)
            limit = hl.rule.above if hl.rule.above is not None else hl.rule.below
            reason = escalation_reason("hard_limit", metric_label=m.title.capitalize(),
                                       cohort="the whole mission" if b.scope == "mission" else b.scope,
                                       value=_fmt(b.value), limit=_fmt(limit))
            evidence = {"metric": m.name, "scope": b.scope, "value": _num(b.value), "n": b.n,
                        "above": hl.rule.above, "below": hl.rule.below, "min_samples": hl.rule.min_samples}
            if hl.rule.severity != "report":
                eid = self._escalate(ms, hl.rule.severity, f"limit:{m.name}", "hard_limit", reason,
                                     evidence, trigger, t, step)
                if hl.rule.severity == "pause":
                    pause_cause = pause_cause or eid
            ms.shift_events.append({"code": "hard_limit", "detector": f"limit:{m.name}", **evidence})
            if b.scope != "mission":
                ms.shift_affected.add(b.scope)
        shift = ms.spec.shift
        severity_of = {"new_template": shift.new_template, "new_action_type": shift.new_action_type,
                       "new_cohort": shift.new_cohort, "mix_shift": shift.mix,
                       "followup_pressure": shift.followup}
        for e in events:
            changed = True
            sev = severity_of[e.code]
            if e.code == "followup_pressure" and e.value != "*":
                ms.shift_affected.add(str(e.value))
            ms.shift_events.append({"code": e.code, "detector": e.detector, "value": e.value,
                                    "issued_at": format_time(t), "triggered_by": trigger})
            if sev == "report":
                continue
            reason = self._shift_reason(e)
            eid = self._escalate(ms, sev, e.detector, e.code, reason, {"value": e.value, **e.evidence},  # type: ignore[arg-type]
                                 trigger, t, step)
            if sev == "pause":
                pause_cause = pause_cause or eid
        if pause_cause is not None and ms.state == "running":
            self._control(ms, "paused", pause_cause, t, step)
        # review_status only moves with a verdict, an escalation or the state, all of
        # which set `changed` above (reviews emit their own receipt).
        cad = ms.spec.cadence
        if ms.last_receipt_t is None:
            ms.last_receipt_t = t
        due = ms.window_actions >= cad.actions
        if not due and cad.every is not None and ms.last_receipt_t is not None:
            due = t - ms.last_receipt_t >= parse_duration(cad.every)
        if changed or due:
            self._receipt(ms, t, step)

    def _integrity_escalation(self, ms: MissionState, dim: str, trigger: str, t: float,
                              step: Step) -> str | None:
        severity = ms.spec.cohorts.integrity
        if severity == "report":
            return None
        entry = ms.integrity[dim]
        problem = entry["problems"][0]
        declared = ms.spec.cohorts.values.get(dim)
        what = {"undeclared": f"not among the declared {', '.join(declared or [])}",
                "too_many_values": f"more than the {ms.spec.cohorts.max_values} distinct values kept",
                "over_budget": f"more distinct values than the {ms.spec.cohorts.max_cohorts} cohorts "
                               "the spec budgets for judgement"}[problem]
        shown = ", ".join(repr(v) for v in sorted(entry["values"])[:5])
        reason = escalation_reason("cohort_integrity", dimension=dim, problem=what, values=shown)
        evidence = {"dimension": dim, "problem": problem, "values": dict(sorted(entry["values"].items())),
                    "declared": declared, "distinct_values": len(ms.cohort_values[dim]),
                    "max_cohorts": ms.spec.cohorts.max_cohorts, "max_values": ms.spec.cohorts.max_values}
        return self._escalate(ms, severity, f"integrity:{dim}", "cohort_integrity", reason, evidence,
                              trigger, t, step)

    @staticmethod
    def _shift_reason(e: ShiftEvent) -> str:
        ev = e.evidence
        if e.code == "mix_shift":
            return escalation_reason(
                "mix_shift", what="action types" if ev["what"] == "action_type" else "templates",
                value=e.value, share=f"{ev['share']:.1%}", baseline_share=f"{ev['baseline_share']:.1%}",
                statistic=_fmt(ev["statistic"]), level=_fmt(ev["level"]))
        if e.code == "followup_pressure":
            return escalation_reason(
                "followup_pressure", cohort="the whole mission" if e.value == "*" else e.value,
                share=f"{ev['share']:.1%}", baseline_share=f"{ev['baseline_share']:.1%}",
                statistic=_fmt(ev["statistic"]), level=_fmt(ev["level"]))
        return escalation_reason(e.code, value=e.value)  # type: ignore[arg-type]

    def _fairness_escalation(self, ms: MissionState, fd: FairnessDelta, v: CohortVerdict, trigger: str,
                             t: float, step: Step) -> str:
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
        return self._escalate(ms, rule.severity, f"fairness:{m.name}", code, reason, evidence, trigger, t, step)

    # ------------------------------------------------------------------ output
    def _chain(self, ms: MissionState, body: dict[str, Any], t: float) -> dict[str, Any]:
        """Seal `body` as the mission's next out record. Its issued_at is the event time `t` of
        the record that caused it, or the chain's latest issued_at if that is later (records
        may arrive out of order): a chain's time never goes back."""
        if ms.clock is not None and t < ms.clock:
            t = ms.clock
        ms.clock = t
        body["seq"] = ms.seq
        body["prev_hash"] = ms.last_hash
        body["issued_at"] = format_time(t)
        sealed = self.signer.seal(body)
        ms.seq += 1
        ms.last_hash = sealed["hash"]
        return sealed

    def _escalate(self, ms: MissionState, severity: str, detector: str, code: EscalationCode, reason: str,
                  evidence: dict[str, Any], trigger: str, t: float, step: Step) -> str:
        eid = f"esc-{ms.mission_id}-{ms.seq}"
        if ms.state == "terminated":
            return eid
        ms.escalations[eid] = _Escalation(severity, True, max(t, ms.clock or t))
        rec = self._chain(ms, {
            "schema": SCHEMA_ESCALATION, "escalation_id": eid, "mission_id": ms.mission_id,
            "severity": "pause" if severity == "pause" else "review", "detector": detector, "code": code,
            "reason": reason, "evidence": evidence, "triggered_by": trigger,
            "spec": ms.spec.name, "spec_version": ms.spec.version,
        }, t)
        step.out.append(rec)
        self.counts[f"escalation:{code}"] += 1
        return eid

    def _control(self, ms: MissionState, state: MissionStateName, cause: str, t: float, step: Step) -> None:
        ms.state = state
        ms.cause = cause
        ms.cause_t = max(t, ms.clock or t)
        step.out.append(self._chain(ms, {"schema": SCHEMA_CONTROL, "mission_id": ms.mission_id,
                                         "state": state, "cause": cause}, t))

    def _status(self, ms: MissionState) -> str:
        if ms.state == "terminated":
            return "terminated"
        if ms.state == "paused":
            return "paused"
        if any(e.open for e in ms.escalations.values()):
            return "needs_review"
        flagged = (
            any(v.verdict == "beyond" for fds in ms.fairness.values() for fd in fds for v in fd.verdicts.values())
            or any(mx.shifted for mx in ms.mix.values())
            or any(fp.latched is not None for fp in ms.followups.values())
            or any(rs.verdict == "elevated" for rss in ms.risk.values() for rs in rss)
            or bool(ms.escalations)
        )
        return "continue_with_monitoring" if flagged or not ms.registered else "continue"

    def _receipt(self, ms: MissionState, t: float, step: Step) -> None:
        ms.review_status = self._status(ms)
        reg = ms.registration
        fairness: dict[str, dict[str, Any]] = {}
        affected: set[str] = set()
        e_values: dict[str, float] = {}
        for metric, fds in sorted(ms.fairness.items()):
            out = fairness.setdefault(metric, {})
            for fd in fds:
                for cohort in sorted(fd.cohorts):
                    v = fd.verdict(cohort) or fd.evaluate(cohort)
                    out[v.cohort] = v.to_json(fd.rule)
                    if v.verdict == "beyond":
                        affected.add(v.cohort)
                    if v.verdict in ("beyond", "within", "insufficient"):
                        e_values[f"{metric}:{v.cohort}"] = v.e_value
        risk = {f"{rs.rule.metric}" + ("" if rs.rule.statistic == "mean" else f"_{rs.rule.statistic}"):
                rs.to_json() for rss in ms.risk.values() for rs in rss}
        affected |= ms.shift_affected
        mix_total = sum(ms.window_mix.values())
        top = ms.window_mix.most_common(1)
        cluster = top[0][0] if top else None
        shifts = {
            "events": list(ms.shift_events),
            "detectors": [mx.status() for mx in ms.mix.values()]
            + [fp.status() for _, fp in sorted(ms.followups.items())],
            "baseline": {"actions": ms.spec.baseline.actions, "frozen": ms.frozen},
        }
        body = {
            "schema": SCHEMA_STRATEGY,
            "receipt_id": f"sr-{ms.mission_id}-{ms.seq}",
            "mission_id": ms.mission_id,
            "registered": ms.registered,
            "objective": reg.objective if reg else None,
            "proxy_metric": reg.proxy_metric if reg else None,
            "constraints": list(reg.constraints) if reg else [],
            "owner": reg.owner if reg else None,
            "spec": ms.spec.name,
            "spec_version": ms.spec.version,
            "state": ms.state,
            "review_status": ms.review_status,
            "current_tactic_cluster": cluster,
            "tactic_mix": {k: round(v / mix_total, 6) for k, v in sorted(ms.window_mix.items())},
            "cohorts_affected": sorted(affected),
            "risk_signals": risk,
            "fairness": fairness,
            "fairness_fdr": {
                "method": "e-BH", "alpha": ms.spec.spec.alpha, "tests": ms.plan.n_tests,
                "flagged": e_bh(e_values, ms.spec.spec.alpha, ms.plan.n_tests),
            },
            "shifts": shifts,
            "open_escalations": sorted(e for e, x in ms.escalations.items() if x.open),
            "window": {
                "from": format_time(ms.window_from) if ms.window_from is not None else None,
                "to": format_time(ms.window_to) if ms.window_to is not None else None,
                "actions": ms.window_actions,
            },
            "totals": {
                "actions": ms.n_actions, "outcomes": ms.n_outcomes, "subjects": len(ms.subjects),
                "duplicates": ms.duplicates,
                "unattributed_outcomes": sum(len(v) for v in ms.pending_outcomes.values()),
            },
        }
        if ms.integrity:
            body["integrity"] = {d: {"problems": list(e["problems"]), "records": e["records"],
                                     "values": dict(sorted(e["values"].items()))}
                                 for d, e in sorted(ms.integrity.items())}
        step.out.append(self._chain(ms, body, t))
        ms.window_from = ms.window_to = None
        ms.window_actions = 0
        ms.window_mix = Counter()
        ms.last_receipt_t = t

    # -------------------------------------------------------------- inspection
    def subject_cohort(self, mission_id: str, subject_id: str) -> dict[str, str] | None:
        ms = self.missions.get(mission_id)
        subj = ms.subjects.get(subject_id) if ms else None
        return subj.cohort if subj and subj.cohort else None
