"""Emission: seal out records into a mission's chain (seq, prev_hash, issued_at, hash,
signature; CONTRACT 2) and keep the mission's state in step with what was issued.

Each chain record is also a leaf of the mission's transparency log (missionwatch.tlog); after
every control record, and every `[transparency] every` records, a signed checkpoint of the log
follows it (CONTRACT 1.9): outside the chain, so a v1 reader of chains is not disturbed."""

from __future__ import annotations

from typing import Any

from ..records import (
    SCHEMA_CHECKPOINT,
    SCHEMA_CONTROL,
    SCHEMA_ESCALATION,
    SCHEMA_STRATEGY,
    format_time,
)
from ..signing import Signer
from ..tlog import Checkpoint, leaf_of, log_origin, note_name, sign_note
from .judge import Escalate
from .mission import EscalationEntry, MissionState, StateName
from .views import review_status, view_of

__all__ = ["Emitter"]


class Emitter:
    def __init__(self, signer: Signer) -> None:
        self.signer = signer
        self.note_name = note_name(signer.key_id)
        self.checkpoints: dict[tuple[str, int], dict[str, Any]] = {}
        """Checkpoints issued since `interleave` last ran, by the (mission, seq) they follow."""

    def chain(self, ms: MissionState, body: dict[str, Any], t: float) -> dict[str, Any]:
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
        ms.tree.append(leaf_of(sealed["hash"]))
        if body["schema"] == SCHEMA_CONTROL or ms.tree.size - ms.checkpointed >= ms.spec.transparency.every:
            self.checkpoints[(ms.mission_id, sealed["seq"])] = self.checkpoint(ms, sealed["issued_at"])
        return sealed

    def checkpoint(self, ms: MissionState, issued_at: str) -> dict[str, Any]:
        """A signed checkpoint of the mission's log as it stands, with the consistency proof from
        its previous checkpoint and the inclusion proof of its newest leaf."""
        size, old = ms.tree.size, ms.checkpointed
        root = ms.tree.root()
        origin = log_origin(self.signer.key_id, ms.mission_id)
        ms.checkpointed = size
        return self.signer.seal({
            "schema": SCHEMA_CHECKPOINT, "mission_id": ms.mission_id, "issued_at": issued_at, "origin": origin,
            "tree_size": size, "root_hash": root.hex(),
            "note": sign_note(Checkpoint(origin, size, root).body, self.note_name, self.signer.key),
            "consistency": {"from_size": old, "proof": [h.hex() for h in ms.tree.consistency(old, size)]},
            "inclusion": {"leaf_index": size - 1, "proof": [h.hex() for h in ms.tree.inclusion(size - 1, size)]},
        })

    def interleave(self, out: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`out` with each checkpoint issued meanwhile right after the record it follows."""
        if not self.checkpoints:
            return out
        merged = []
        for rec in out:
            merged.append(rec)
            cp = self.checkpoints.pop((rec["mission_id"], rec["seq"]), None)
            if cp is not None:
                merged.append(cp)
        merged += self.checkpoints.values()  # none: every checkpoint follows a record of the step
        self.checkpoints.clear()
        return merged

    def escalation(self, ms: MissionState, e: Escalate, trigger: str, t: float) -> tuple[str, dict[str, Any] | None]:
        """Issue an escalation; its id, and the record (None for a terminated mission)."""
        eid = f"esc-{ms.mission_id}-{ms.seq}"
        if ms.state == "terminated":
            return eid, None
        ms.escalations[eid] = EscalationEntry(e.severity, True, max(t, ms.clock or t), e.family)
        return eid, self.chain(ms, {
            "schema": SCHEMA_ESCALATION, "escalation_id": eid, "mission_id": ms.mission_id,
            "severity": "pause" if e.severity == "pause" else "review", "detector": e.detector, "code": e.code,
            "reason": e.reason, "evidence": e.evidence, "triggered_by": trigger,
            "spec": ms.spec.name, "spec_version": ms.spec.version,
        }, t)

    def escalations(self, ms: MissionState, escalations: list[Escalate], trigger: str,
                    t: float) -> tuple[list[dict[str, Any]], str | None, dict[str, str]]:
        """Issue `escalations` in order: the records (none for a terminated mission), the id of
        the first that pauses (the pause's cause), and the first id issued per cause family."""
        records: list[dict[str, Any]] = []
        pause_cause: str | None = None
        issued: dict[str, str] = {}
        for e in escalations:
            eid, rec = self.escalation(ms, e, trigger, t)
            if rec is not None:
                records.append(rec)
            if e.family is not None:
                issued.setdefault(e.family, eid)
            if e.severity == "pause" and pause_cause is None:
                pause_cause = eid
        return records, pause_cause, issued

    def control(self, ms: MissionState, state: StateName, cause: str, t: float) -> dict[str, Any]:
        ms.state = state
        ms.cause = cause
        ms.cause_t = max(t, ms.clock or t)
        return self.chain(ms, {"schema": SCHEMA_CONTROL, "mission_id": ms.mission_id, "state": state,
                               "cause": cause}, t)

    def receipt(self, ms: MissionState, t: float) -> dict[str, Any]:
        """A strategy receipt of the mission's view; it closes the receipt window."""
        status = review_status(ms)
        view = view_of(ms, status)
        ms.review_status = status
        sealed = self.chain(ms, {"schema": SCHEMA_STRATEGY, **view.receipt_body(f"sr-{ms.mission_id}-{ms.seq}")}, t)
        ms.window_from = ms.window_to = None
        if ms.window_actions:
            ms.recent_mix, ms.recent_cohorts = ms.window_mix.copy(), ms.window_cohorts.copy()
        ms.window_actions = 0
        ms.window_mix.clear()
        ms.window_cohorts.clear()
        ms.last_receipt_t = t
        return sealed
