"""The functional core: `Monitor.feed(message) -> Step`.

Records in, out records back. No I/O, no wall clock: time is the records' own
event time. The replay command, the streaming service and the tests all drive
this one class, so a stream and a replay of the same records give the same
ledger, the same verdicts and byte-identical out records.

A message goes: intake (decode, limits, canonical bytes, signatures; `intake.py`)
-> admission (model, role, time window, dedupe, review rules; `admission.py`)
-> the mission observes it (`observe.py`) -> judgement (`judge.py`) -> emission
into the mission's chain (`emit.py`). Surfaces read `view(mission_id)`.

`Step.out` holds the out records issued, in order (escalations, then a control
signal, then a strategy receipt). `Step.rejected` says why an input, or an item
of a batch, was refused; `Step.accepted` lists what entered the ledger.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from typing import Any, NamedTuple

from pydantic import BaseModel, ValidationError

from ..admission import DEFAULT_LIMITS, Limits
from ..intake import Intake, Prepared, Reject, Signatures
from ..records import (
    SCHEMA_BATCH,
    ActionRecord,
    BatchEnvelope,
    MissionRecord,
    OutcomeRecord,
    ReviewRecord,
    describe_validation_error,
    format_time,
)
from ..signing import Keyring, Signer, VerifyFailure
from ..spec import Spec, SpecRegistry
from .admission import admit_review, check_time, resume_quorum, signer_of, validate
from .emit import Emitter
from .idset import content_digest
from .judge import judge, log_events, receipt_due, settle
from .mission import BASELINE, CONTACT, MissionState, transition
from .observe import Observation, observe_action, observe_outcome
from .plan import Plan
from .step import Accepted, Rejection, Step, internal_error, item_excerpt, rejection_row
from .views import MissionSummary, MissionView, summary_of, view_of

__all__ = ["Monitor"]


class Monitor:
    """The monitoring core. Feed it records in arrival order; it returns what to emit."""

    def __init__(self, specs: SpecRegistry, *, signer: Signer, keyring: Keyring | None = None,
                 allow_unsigned: bool = False, limits: Limits = DEFAULT_LIMITS) -> None:
        self.specs = specs
        self.signer = signer
        self.limits = limits
        self.intake = Intake(keyring or Keyring(), limits)
        self.allow_unsigned = allow_unsigned
        self.missions: dict[str, MissionState] = {}
        self._plans: dict[str, Plan] = {}
        self._emit = Emitter(signer)
        self.counts: Counter[str] = Counter()

    @property
    def keyring(self) -> Keyring:
        return self.intake.keyring

    def view(self, mission_id: str) -> MissionView | None:
        return view_of(ms) if (ms := self.missions.get(mission_id)) is not None else None

    def summary(self, mission_id: str) -> MissionSummary | None:
        """What the `missions` table shows of the mission (`view`'s fields of those names, cheaply)."""
        return summary_of(ms) if (ms := self.missions.get(mission_id)) is not None else None

    def mission_ids(self) -> list[str]:
        return sorted(self.missions)

    def ledger_rows(self, mission_id: str) -> list[dict[str, Any]]:
        """The mission's open ledger cells in long format (rows of the analysts' `ledger` table)."""
        return list(self.iter_ledger_rows(mission_id))

    def iter_ledger_rows(self, mission_id: str) -> Iterator[dict[str, Any]]:
        """`ledger_rows`, one at a time. Only the open cells: the monitor drops sealed ones,
        which went out in `Step.sealed`."""
        ms = self.missions.get(mission_id)
        return ms.ledger.iter_rows(mission_id) if ms is not None else iter(())

    def ledger_totals(self, mission_id: str) -> list[dict[str, Any]]:
        """Whole-mission totals per dimension, cohort and measure, sealed buckets included
        (the rows of the analysts' `ledger_totals` view)."""
        ms = self.missions.get(mission_id)
        if ms is None:
            return []
        return [{"mission_id": mission_id, "dimension": d, "cohort": v, "measure": k, "value": x}
                for (d, v), cell in sorted(ms.ledger.totals().items()) for k, x in sorted(cell.items())]

    def ledger_cell(self, mission_id: str, bucket: float, dimension: str, cohort: str) -> dict[str, float]:
        """The measures of one open ledger cell (a copy), as `Step.cells` names it."""
        ms = self.missions.get(mission_id)
        return dict(ms.ledger.cells.get((bucket, dimension, cohort), {})) if ms is not None else {}

    def template_attribute(self, mission_id: str) -> str:
        ms = self.missions.get(mission_id)
        return (ms.spec if ms is not None else self.specs.default).actions.template_attribute

    # ------------------------------------------------------------------ input
    def feed(self, raw: str | bytes | dict[str, Any] | Prepared) -> Step:
        """Take one message (a record or a batch envelope); return what it caused.

        `raw` may be what `prepare` returned for it, from any thread. Whatever the core raises
        on one message becomes its `internal_error` rejection: the monitor never stops.
        """
        step = Step()
        try:
            p = raw if isinstance(raw, Prepared) else self.prepare(raw)
            if p.reject is not None:
                raise p.reject
            if p.schema == SCHEMA_BATCH:
                self._feed_batch(p, step)
            else:
                self._feed_one(p, step, None, None)
        except Reject as exc:
            step.rejected.append(Rejection(exc.code, exc.reason))
        except Exception as exc:  # a poison message must never stop the monitor
            step.rejected.append(internal_error(exc))
        step.out = self._emit.interleave(step.out)
        for rejection in step.rejected:
            self.counts[f"rejected:{rejection.code}"] += 1
        for mid in sorted(step.missions):
            ledger = self.missions[mid].ledger
            step.sealed.extend((mid, key, cell) for key, cell in ledger.seal())
            step.cells.extend((mid, *key) for key in ledger.drain_touched())
        return step

    def prepare(self, raw: str | bytes | dict[str, Any], signatures: Signatures | None = None) -> Prepared:
        """The stateless half of `feed` (see `Intake.prepare`): decode, canonicalize and
        check signatures. It may run ahead of `feed` on other threads; `feed(prepare(x))`
        equals `feed(x)`."""
        return self.intake.prepare(raw, signatures)

    def rejection_row(self, r: Rejection, message: str | bytes) -> dict[str, Any]:
        """What rejected.jsonl and the rejected topic keep of a rejection: code, reason, the item
        index, and a bounded excerpt of the offending item or message (never the whole of a
        large message, never a copy of it per item)."""
        return rejection_row(r, message, self.limits.excerpt_chars)

    def _feed_batch(self, p: Prepared, step: Step) -> None:
        assert p.record is not None and p.payload is not None
        try:
            batch = BatchEnvelope.model_validate(p.record)
        except ValidationError as exc:
            raise Reject("invalid_field", describe_validation_error(SCHEMA_BATCH, exc)) from None
        if not batch.items:
            raise Reject("empty_batch")
        if isinstance(p.signer, VerifyFailure):
            raise Reject("bad_batch_signature" if p.signer.code == "bad_signature" else p.signer.code,
                         p.signer.detail)
        batch_key: tuple[str, str] | None = None
        if p.signer is not None:
            role = self.keyring.role_of(p.signer)
            assert role is not None
            batch_key = (p.signer, role)
        missions = sorted({i["mission_id"] for i in batch.items
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
                step.rejected.append(Rejection(r.code, r.reason, i, item_excerpt(batch.items[i], self.limits)))
            except Exception as exc:  # one poison item rejects that item only
                step.rejected.append(internal_error(exc, i, item_excerpt(batch.items[i], self.limits)))

    def _feed_one(self, p: Prepared, step: Step, batch_key: tuple[str, str] | None,
                  batch_hash: str | None) -> None:
        model, schema = validate(p)
        key_id = signer_of(p, schema, batch_key, self.allow_unsigned)
        if isinstance(model, _TIMED):
            check_time(self.missions.get(model.mission_id), model.occurred_at, schema)
        assert p.record is not None and p.payload is not None
        h = "sha256:" + hashlib.sha256(p.payload).hexdigest()
        draft = _Draft(p.record, model, h, key_id, batch_hash)
        if isinstance(model, ActionRecord):
            self._on_action(model, draft, step)
        elif isinstance(model, OutcomeRecord):
            self._on_outcome(model, draft, step)
        elif isinstance(model, ReviewRecord):
            self._on_review(model, draft, step)
        elif isinstance(model, MissionRecord):
            self._on_mission(model, draft, step)

    # ---------------------------------------------------------------- missions
    def _plan(self, spec: Spec) -> Plan:
        plan = self._plans.get(spec.name)
        if plan is None:
            plan = self._plans[spec.name] = Plan(spec)
        return plan

    def _mission(self, mission_id: str, t: float) -> MissionState:
        """The mission's state; an unregistered mission starts (its anchor) at its first record."""
        ms = self.missions.get(mission_id)
        if ms is None:
            spec = self.specs.default
            ms = self.missions[mission_id] = MissionState(mission_id, spec, self._plan(spec), None, None, t)
        return ms

    def _on_mission(self, m: MissionRecord, acc: _Draft, step: Step) -> None:
        ms = self.missions.get(m.mission_id)
        if ms is not None:
            if ms.registration_hash == acc.hash:
                ms.duplicates += 1
                step.accepted.append(_as(acc, "mission", duplicate=True))
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
        self.missions[m.mission_id] = MissionState(m.mission_id, spec, self._plan(spec), m, acc.hash)
        step.accepted.append(_as(acc, "mission"))
        step.missions.add(m.mission_id)

    def _on_action(self, a: ActionRecord, acc: _Draft, step: Step) -> None:
        ms = self._mission(a.mission_id, a.occurred_at)
        if _duplicate(ms, "r", a.receipt_id, acc, step):
            return
        flags = (CONTACT if ms.plan.is_contact(a.action_type) else 0) | (
            BASELINE if ms.n_actions < ms.spec.baseline.actions else 0)
        ms.ids.put("r", a.receipt_id, content_digest(acc.hash), flags)
        cohort = ms.cohort_of(a.subject.cohort)
        step.accepted.append(_as(acc, "action", cohort=cohort))
        self._settle(ms, observe_action(ms, a, cohort), a.receipt_id, a.occurred_at, step)

    def _on_outcome(self, o: OutcomeRecord, acc: _Draft, step: Step) -> None:
        ms = self._mission(o.mission_id, o.occurred_at)
        if _duplicate(ms, "o", o.outcome_id, acc, step):
            return
        ms.ids.put("o", o.outcome_id, content_digest(acc.hash))
        own = ms.cohort_of(o.subject.cohort) if o.subject.cohort else None
        obs = observe_outcome(ms, o, own)
        step.accepted.append(_as(acc, "outcome", cohort=own or obs.cohort))
        self._settle(ms, obs, o.outcome_id, o.occurred_at, step)

    def _on_review(self, r: ReviewRecord, acc: _Draft, step: Step) -> None:
        ms = self.missions.get(r.mission_id)
        if ms is None:
            raise Reject("unknown_escalation", f"the review names mission {r.mission_id!r}, "
                         "which the monitor has no record of")
        if r.escalation_id is not None and r.escalation_id not in ms.escalations and r.escalation_id != ms.cause:
            raise Reject("unknown_escalation", f"escalation {r.escalation_id!r} is not one of mission "
                         f"{r.mission_id!r}'s escalations")
        if _duplicate(ms, "v", r.review_id, acc, step):
            return
        admit_review(ms, r, self.keyring.scope_of(acc.key_id), acc.key_id)
        ms.ids.put("v", r.review_id, content_digest(acc.hash))
        step.accepted.append(_as(acc, "review"))
        step.missions.add(ms.mission_id)
        if _only_an_approval(ms, r, acc.key_id):  # the mission stays paused, its escalation open
            step.out.append(self._emit.receipt(ms, r.occurred_at))
            return
        if r.decision in ("acknowledge", "resume"):
            ms.acknowledge(r.escalation_id)
        new_state = transition(r.decision, ms.state)
        if new_state is not None:
            step.out.append(self._emit.control(ms, new_state, r.review_id, r.occurred_at))
        step.out.append(self._emit.receipt(ms, r.occurred_at))

    # ------------------------------------------------------------------ output
    def _settle(self, ms: MissionState, obs: Observation, trigger: str, t: float, step: Step) -> None:
        """Judge what the record did, then issue: escalations, a pause, a receipt when due."""
        step.missions.add(ms.mission_id)
        decisions = judge(ms, obs, t)
        settle(ms, decisions)
        records, pause_cause, issued = self._emit.escalations(ms, decisions.escalations, trigger, t)
        step.out.extend(records)
        self.counts.update(f"escalation:{rec['code']}" for rec in records)
        log_events(ms, obs, decisions, issued)
        if pause_cause is not None and ms.state == "running":
            step.out.append(self._emit.control(ms, "paused", pause_cause, t))
        if ms.last_receipt_t is None:
            ms.last_receipt_t = t
        if decisions.changed or receipt_due(ms, t):
            step.out.append(self._emit.receipt(ms, t))

    # -------------------------------------------------------------- inspection
    def subject_cohort(self, mission_id: str, subject_id: str) -> dict[str, str] | None:
        ms = self.missions.get(mission_id)
        subj = ms.subjects.get(subject_id) if ms else None
        return subj.cohort if subj and subj.cohort else None


class _Draft(NamedTuple):
    """What an accepted record's `Accepted` carries beyond its kind (built once, by `_as`)."""

    record: dict[str, Any]
    model: BaseModel
    hash: str
    key_id: str | None
    batch_hash: str | None


_TIMED = (ActionRecord, OutcomeRecord, ReviewRecord)
"""The records dated by `occurred_at`."""


def _as(acc: _Draft, kind: Any, *, duplicate: bool = False, cohort: dict[str, str] | None = None) -> Accepted:
    return Accepted(kind, acc.record, acc.model, acc.hash, acc.key_id, acc.batch_hash, duplicate, cohort)


_KINDS = {"r": "action", "o": "outcome", "v": "review"}


def _only_an_approval(ms: MissionState, r: ReviewRecord, key_id: str | None) -> bool:
    """Note an accepted review as the mission's latest; a resume the spec's `resume_reviewers`
    are not yet reached with is recorded as an approval (True: it releases nothing yet)."""
    ms.last_review = {"review_id": r.review_id, "reviewer": r.reviewer, "decision": r.decision,
                      "escalation_id": r.escalation_id, "note": r.note, "occurred_at": format_time(r.occurred_at)}
    need = resume_quorum(ms)
    if r.decision != "resume" or need <= 1 or ms.cause is None:
        return False
    approvals = ms.resume_approvals.setdefault(ms.cause, [])
    approvals.append((r.reviewer, key_id))
    return len(approvals) < need


def _duplicate(ms: MissionState, kind: str, ident: str, acc: _Draft, step: Step) -> bool:
    """Whether the record repeats one the mission accepted (then counted, changing nothing);
    `MissionState.seen` refuses an id that comes back with other content."""
    if not ms.seen(kind, ident, acc.hash):
        return False
    ms.duplicates += 1
    step.accepted.append(_as(acc, _KINDS[kind], duplicate=True))
    return True
