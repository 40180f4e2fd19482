"""Writing a review: the record a person's decision becomes, signed under their key
(`missionwatch/review@1`, CONTRACT 1.4), and the reviewers a console holds keys for.

The console and `missionwatch review` both build reviews here, so what a review carries does
not depend on how it was made.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..records import SCHEMA_REVIEW, format_time, parse_time
from ..signing import DECISIONS, Keyring, Signer, load_private_key

__all__ = ["Desk", "DeskError", "DeskReviewer", "fate_of", "make_review", "review_time", "token_digest"]


class DeskError(ValueError):
    """A reviewers file that cannot be used; the message names the file and why."""


def review_time(*not_before: str | None, now: float | None = None) -> str:
    """When a review made now is dated: now, or the latest of `not_before` (event times of what it
    answers) when the mission's event time runs ahead of the wall clock (a replay, a simulation):
    a review may never be dated before what it reviews (CONTRACT 8)."""
    t = datetime.now(UTC).timestamp() if now is None else now
    for s in not_before:
        if s:
            try:
                t = max(t, parse_time(s).timestamp())
            except ValueError:
                continue
    return format_time(t)


def make_review(signer: Signer, *, mission_id: str, decision: str, reviewer: str, occurred_at: str,
                escalation_id: str | None = None, note: str | None = None,
                review_id: str | None = None) -> dict[str, Any]:
    """A signed review record. Raises ValueError for a decision CONTRACT 1.4 does not know."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
    rec: dict[str, Any] = {"schema": SCHEMA_REVIEW, "review_id": review_id or f"rv-{secrets.token_hex(8)}",
                           "mission_id": mission_id, "reviewer": reviewer, "decision": decision,
                           "occurred_at": occurred_at}
    if escalation_id:
        rec["escalation_id"] = escalation_id
    if note:
        rec["note"] = note
    return signer.sign(rec)


def token_digest(token: str) -> str:
    """What a reviewers file keeps of a token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class DeskReviewer:
    """A person the console reviews for: their name, and the key it signs their reviews with."""

    reviewer: str
    signer: Signer


class Desk:
    """The reviewers a console may sign for, each reached by a token (a bearer secret).

    File (JSON): `{"reviewers": [{"token_sha256": "<hex>", "key": "lee.pem", "reviewer": "user:lee.risk"}]}`;
    `key` relative to the file. `reviewer` may be left out when the keyring binds the key to a
    reviewer name (its entry's `reviewer`). Only digests of tokens are kept, compared in
    constant time."""

    def __init__(self, reviewers: dict[str, DeskReviewer] | None = None) -> None:
        self._by_digest = dict(reviewers or {})
        self.secret = secrets.token_bytes(32)
        """Signs the CSRF tokens this console hands out (new on every start)."""

    def __bool__(self) -> bool:
        return bool(self._by_digest)

    @classmethod
    def load(cls, path: Path, keyring: Keyring) -> Desk:
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DeskError(f"{path}: cannot read the reviewers file ({exc})") from None
        entries = doc.get("reviewers") if isinstance(doc, dict) else None
        if not isinstance(entries, list):
            raise DeskError(f'{path}: expected {{"reviewers": [...]}}')
        out: dict[str, DeskReviewer] = {}
        for i, e in enumerate(entries):
            where = f"{path}: reviewers[{i}]"
            if not isinstance(e, dict) or not isinstance(e.get("token_sha256"), str) or not isinstance(e.get("key"), str):
                raise DeskError(f"{where} needs token_sha256 and key (strings)")
            try:
                signer = load_private_key(path.parent / e["key"])
            except Exception as exc:
                raise DeskError(f"{where}: {exc}") from None
            if keyring.role_of(signer.key_id) != "reviewer":
                raise DeskError(f"{where}: key {signer.key_id!r} is not a reviewer key of the keyring")
            bound = keyring.scope_of(signer.key_id).reviewer
            name = e.get("reviewer") or bound
            if not isinstance(name, str) or not name:
                raise DeskError(f"{where}: name the reviewer (the keyring binds no reviewer to {signer.key_id!r})")
            if bound is not None and name != bound:
                raise DeskError(f"{where}: key {signer.key_id!r} belongs to {bound!r} in the keyring; "
                                f"it cannot sign for {name!r}")
            out[e["token_sha256"].lower()] = DeskReviewer(name, signer)
        return cls(out)

    def reviewer(self, token: str | None) -> DeskReviewer | None:
        """The reviewer a token stands for, or None."""
        if not token:
            return None
        digest = token_digest(token)
        found = None
        for known, who in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                found = who
        return found

    def csrf(self, token: str) -> str:
        """The CSRF token of a session opened with `token`: what the page echoes on every review."""
        return hmac.new(self.secret, token_digest(token).encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, token: str, presented: str | None) -> bool:
        return (presented is not None and presented.isascii()
                and hmac.compare_digest(self.csrf(token).encode(), presented.encode()))


def fate_of(review: dict[str, Any], topic: str, record: dict[str, Any]) -> dict[str, Any] | None:
    """What a record the monitor published after `review` says of it, or None if nothing:
    refused (a row of the rejected topic quoting its review_id), accepted (the control signal
    it caused, or for an acknowledgement the mission's next strategy receipt with the
    escalation no longer open)."""
    rid, mid = review["review_id"], review["mission_id"]
    if topic.endswith(".rejected"):
        quoted = str(record.get("record") or "")
        if f'"review_id":"{rid}"' in quoted.replace(" ", "") or f'"review_id": "{rid}"' in quoted:
            return {"outcome": "refused", "code": record.get("code"), "reason": record.get("reason")}
        return None
    if record.get("mission_id") != mid:
        return None
    if record.get("schema") == "missionwatch/control@1" and record.get("cause") == rid:
        return {"outcome": "accepted", "state": record.get("state")}
    if review["decision"] == "acknowledge" and record.get("schema") == "missionwatch/strategy@1":
        still = record.get("open_escalations") or []
        esc = review.get("escalation_id")
        if (esc is not None and esc not in still) or (esc is None and not still):
            return {"outcome": "accepted", "state": record.get("state")}
    return None
