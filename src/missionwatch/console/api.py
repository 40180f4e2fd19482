"""The risk console's JSON answers, built from mission views and their history only.

A `Source` is whatever holds missions: the streaming worker (`StreamCore`) or an offline
monitor with its histories. Every answer here is a plain dict, ready for `json.dumps`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from ..core.views import MissionView
from ..records import parse_time
from .history import MissionHistory

__all__ = ["Source", "escalations", "mission", "missions", "queue", "receipts", "reviews", "view"]

STATES = ("running", "needs_review", "paused", "terminated")
"""How the overview names a mission's state: `needs_review` is a running mission with an
open escalation."""


class Source(Protocol):
    def views(self) -> list[MissionView]: ...
    def view(self, mission_id: str) -> MissionView | None: ...
    def history(self, mission_id: str) -> MissionHistory | None: ...


def console_state(view: MissionView) -> str:
    if view.state == "running" and view.open_escalations:
        return "needs_review"
    return view.state


def _rate(h: MissionHistory | None) -> float | None:
    """Actions per minute of event time over the latest receipts that span some time."""
    recent = h.latest(10) if h is not None else []
    if len(recent) < 2:
        return None
    first, last = recent[0], recent[-1]
    try:
        span = parse_time(str(last["issued_at"])) - parse_time(str(first["issued_at"]))
    except ValueError:
        return None
    actions, minutes = (last.get("actions") or 0) - (first.get("actions") or 0), span.total_seconds() / 60
    return round(actions / minutes, 3) if minutes > 0 else None


def _last_receipt(h: MissionHistory | None) -> dict[str, Any] | None:
    latest = h.latest(1) if h is not None else []
    return {k: latest[-1][k] for k in ("receipt_id", "seq", "issued_at", "review_status", "tactics")} if latest else None


def _summary(view: MissionView, h: MissionHistory | None) -> dict[str, Any]:
    return {"mission_id": view.mission_id, "state": console_state(view), "control_state": view.state,
            "review_status": view.review_status, "open_escalations": len(view.open_escalations),
            "objective": view.objective, "owner": view.owner, "spec": view.spec,
            "actions": view.totals["actions"], "actions_per_minute": _rate(h),
            "tactics": list(view.tactics), "cohorts_affected": list(view.cohorts_affected),
            "last_receipt": _last_receipt(h)}


def missions(source: Source) -> dict[str, Any]:
    """The overview: every mission, its state, review status, open escalations, rate and last receipt."""
    rows = [_summary(v, source.history(v.mission_id)) for v in source.views()]
    return {"missions": rows, "counts": {s: sum(r["state"] == s for r in rows) for s in STATES}}


def _escalation(rec: dict[str, Any], open_ids: Iterable[str], h: MissionHistory | None) -> dict[str, Any]:
    eid = rec.get("escalation_id")
    evidence = rec.get("evidence") or {}
    related = evidence.get("related") if isinstance(evidence, dict) else None
    return {"escalation_id": eid, "mission_id": rec.get("mission_id"), "issued_at": rec.get("issued_at"),
            "severity": rec.get("severity"), "detector": rec.get("detector"), "code": rec.get("code"),
            "reason": rec.get("reason"), "evidence": evidence, "related": related or [],
            "triggered_by": rec.get("triggered_by"), "seq": rec.get("seq"), "open": eid in set(open_ids),
            "reviews": [r for r in (h.reviews if h else ()) if r.get("escalation_id") == eid]}


def _escalations(v: MissionView, h: MissionHistory | None) -> list[dict[str, Any]]:
    """Every escalation kept of the mission, in issue order, with whether it is open."""
    return [_escalation(e, v.open_escalations, h) for e in (h.escalations.values() if h else ())]


def escalations(source: Source, mission_id: str) -> list[dict[str, Any]] | None:
    v = source.view(mission_id)
    return _escalations(v, source.history(mission_id)) if v is not None else None


def receipts(source: Source, mission_id: str) -> list[dict[str, Any]] | None:
    if source.view(mission_id) is None:
        return None
    h = source.history(mission_id)
    return list(h.receipts) if h else []


def reviews(source: Source, mission_id: str) -> list[dict[str, Any]] | None:
    if source.view(mission_id) is None:
        return None
    h = source.history(mission_id)
    return list(h.reviews) if h else []


def _view(view: MissionView) -> dict[str, Any]:
    body = view.receipt_body(view.mission_id)
    del body["receipt_id"]
    return {**body, "human_delegate": view.human_delegate, "last_seq": view.last_seq, "cause": view.cause,
            "console_state": console_state(view)}


def view(source: Source, mission_id: str) -> dict[str, Any] | None:
    """The mission's view as JSON (a strategy receipt's fields, unsigned, as of now)."""
    v = source.view(mission_id)
    return _view(v) if v is not None else None


def mission(source: Source, mission_id: str) -> dict[str, Any] | None:
    """A mission page's data: the view, then its history (receipt digests, escalations, reviews, controls)."""
    v = source.view(mission_id)
    if v is None:
        return None
    h = source.history(mission_id)
    return {"view": _view(v),
            "receipts": list(h.receipts) if h else [],
            "escalations": _escalations(v, h),
            "reviews": list(h.reviews) if h else [],
            "controls": list(h.controls) if h else [],
            "last_receipt": h.last_receipt if h else None}


def queue(source: Source) -> dict[str, Any]:
    """Open escalations, oldest first, grouped by mission (the mission with the oldest first)."""
    groups: list[dict[str, Any]] = []
    for v in source.views():
        if not v.open_escalations:
            continue
        items = [e for e in _escalations(v, source.history(v.mission_id)) if e["open"]]
        items.sort(key=lambda e: (str(e["issued_at"]), e["seq"] or 0))
        groups.append({"mission_id": v.mission_id, "state": console_state(v), "control_state": v.state,
                       "cause": v.cause, "objective": v.objective, "owner": v.owner, "spec": v.spec,
                       "resume_approvals": v.resume_approvals, "escalations": items})
    groups.sort(key=lambda g: (str(g["escalations"][0]["issued_at"]) if g["escalations"] else "", g["mission_id"]))
    return {"groups": groups, "open": sum(len(g["escalations"]) for g in groups)}
