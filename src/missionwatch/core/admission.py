"""Admission: what may enter a mission, and why not. Each function raises `Reject` with a
code and a sentence; none changes any state.

- `validate`: the record against its schema's model;
- `signer_of`: whose key vouches for it (its own signature, or its batch's), or unsigned;
- `check_time`: its event time within the mission's plausible window;
- `admit_review`: a review's rules (terminated mission, the key's scope, order, cause).

Decoding, limits, canonical bytes and signature checks come before, in `intake.py`;
deduplication is the mission's (`MissionState.seen`).
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from ..intake import Prepared, Reject
from ..records import IN_SCHEMAS, ReviewRecord, describe_validation_error, format_time
from ..signing import ROLE_FOR_SCHEMA, KeyScope, VerifyFailure
from .mission import MissionState

__all__ = ["admit_review", "check_time", "mission_owner", "resume_quorum", "signer_of", "validate"]


def validate(p: Prepared) -> tuple[BaseModel, str]:
    record, schema = p.record, p.schema
    assert record is not None and schema is not None
    try:
        return IN_SCHEMAS[schema].model_validate(record), schema
    except ValidationError as exc:
        raise Reject("invalid_field", describe_validation_error(schema, exc)) from None


def signer_of(p: Prepared, schema: str, batch_key: tuple[str, str] | None, allow_unsigned: bool) -> str | None:
    """The key_id that vouches for the record (None: unsigned, and that is allowed)."""
    role = ROLE_FOR_SCHEMA[schema]
    if p.signer is None and batch_key is not None:
        key_id, batch_role = batch_key
        if batch_role != role:
            raise Reject("wrong_role", f"the batch is signed by {key_id!r} with role {batch_role!r}, "
                         f"but a {schema} record must be signed by a {role!r} key")
        return key_id
    if p.signer is None:
        if not allow_unsigned:
            raise Reject("signature_missing")
        return None
    if isinstance(p.signer, VerifyFailure):
        raise Reject(p.signer.code, p.signer.detail)
    return p.signer


def check_time(ms: MissionState | None, t: float, schema: str) -> None:
    """Refuse an event time outside the mission's plausible window."""
    if ms is None or ms.anchor is None:
        return
    # a registration declares the start; an unregistered mission's first record only hints
    # at it (an earlier-dated record may come next), so it gets the horizon both ways
    plan = ms.plan
    if ms.anchor - (plan.skew if ms.registered else plan.horizon) <= t <= ms.anchor + plan.horizon:
        return  # within the window (what follows words the rejection)
    what = schema.removeprefix("missionwatch/").split("@")[0]
    meta = ms.spec.spec
    back, back_text = (ms.plan.skew, meta.skew) if ms.registered else (ms.plan.horizon, meta.horizon)
    if t < ms.anchor - back:
        started = "started" if ms.registered else "first record was dated"
        raise Reject("implausible_time", f"the {what} is dated {format_time(t)}, more than "
                     f"{back_text} before mission {ms.mission_id!r} {started} ({format_time(ms.anchor)})")
    if t > ms.anchor + ms.plan.horizon:
        raise Reject("implausible_time", f"the {what} is dated {format_time(t)}, more than "
                     f"{meta.horizon} after mission {ms.mission_id!r} started "
                     f"({format_time(ms.anchor)}); the spec's horizon bounds how far ahead "
                     "a record may be dated")


def admit_review(ms: MissionState, r: ReviewRecord, scope: KeyScope, key_id: str | None) -> None:
    """The rules a review must meet beyond its signature: the mission is not terminated; the
    signing key's scope covers the mission, the decision and the reviewer named; it is not
    dated before what it reviews; a resume names the cause it releases."""
    if ms.state == "terminated":
        raise Reject("mission_terminated", repr(r.mission_id))
    _check_scope(ms, r, scope, key_id)
    _check_quorum(ms, r, key_id)
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


def mission_owner(ms: MissionState) -> str | None:
    """Who owns a mission: its registration's owner, else its spec's (None if neither names one)."""
    return (ms.registration.owner if ms.registration else None) or ms.spec.spec.owner or None


def _check_scope(ms: MissionState, r: ReviewRecord, scope: KeyScope, key_id: str | None) -> None:
    if scope.reviewer is not None and r.reviewer != scope.reviewer:
        raise Reject("reviewer_not_key_holder", f"key {key_id!r} belongs to reviewer {scope.reviewer!r}; "
                     f"a review it signs cannot name {r.reviewer!r}")
    if not scope.covers_mission(r.mission_id):
        raise Reject("reviewer_out_of_scope", f"key {key_id!r} may review missions matching "
                     f"{', '.join(scope.missions or ())}, not {r.mission_id!r}")
    if not scope.covers_spec(ms.spec.name):
        raise Reject("reviewer_out_of_scope", f"key {key_id!r} may review missions of the specs "
                     f"{', '.join(scope.specs or ())}, not {ms.spec.name!r}")
    owner = mission_owner(ms)
    if not scope.covers_owner(owner):
        raise Reject("reviewer_out_of_scope", f"key {key_id!r} may review missions owned by "
                     f"{', '.join(scope.owners or ())}, not {owner or 'a mission with no owner'!r}")
    if scope.decisions is not None and r.decision not in scope.decisions:
        raise Reject("reviewer_out_of_scope", f"key {key_id!r} may decide {', '.join(scope.decisions)}, "
                     f"not {r.decision!r}")


def resume_quorum(ms: MissionState) -> int:
    """How many distinct reviewers must resume the mission now: the spec's `resume_reviewers`
    while it is paused by an escalation (a pause-severity one), else 1."""
    paused_by_escalation = ms.state == "paused" and ms.cause in ms.escalations
    return ms.spec.spec.resume_reviewers if paused_by_escalation else 1


def _check_quorum(ms: MissionState, r: ReviewRecord, key_id: str | None) -> None:
    need = resume_quorum(ms)
    if r.decision != "resume" or need <= 1 or ms.cause is None:
        return
    got = ms.resume_approvals.get(ms.cause, [])
    if any(name == r.reviewer or (key_id is not None and key == key_id) for name, key in got):
        raise Reject("second_reviewer_required", f"{r.reviewer!r} (key {key_id!r}) already approved resuming "
                     f"mission {r.mission_id!r}; the spec asks {need} distinct reviewers to resume it after a "
                     f"pause-severity escalation ({len(got)} of {need} so far)")
