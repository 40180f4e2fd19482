"""What the risk console remembers of each mission beyond its current view: the strategy
receipts over time (as compact digests), every escalation, the control signals and the
accepted reviews. Pure: steps in, history kept; it reads no clock.

A worker keeps one `History` per input partition beside that partition's `Monitor`, fed the
same steps (live and during a catch-up), so what the console shows is a function of the log
as the monitor's state is. Bounded per mission: the latest `RECEIPTS_KEPT` receipt digests,
`CONTROLS_KEPT` control signals, `ESCALATIONS_KEPT` escalations and `REVIEWS_KEPT` reviews.
"""

from __future__ import annotations

import json
import zlib
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType
from typing import Any, overload

from ..core.step import Step
from ..records import SCHEMA_CONTROL, SCHEMA_ESCALATION, SCHEMA_REVIEW, SCHEMA_STRATEGY

__all__ = ["FEED_KEPT", "Feed", "History", "MissionHistory", "Packer", "Receipts", "digest", "review_outcomes"]

_NONE: Mapping[str, dict[str, Any]] = MappingProxyType({})
RECEIPTS_KEPT = 500
CONTROLS_KEPT = 200
ESCALATIONS_KEPT = 1000
REVIEWS_KEPT = 1000
OUTCOMES_KEPT = 2000
"""Review ids whose fate (accepted or refused) is remembered, per partition."""
FEED_KEPT = 5000
"""Live events (escalations, receipts, controls, reviews) a feed keeps for a client that reconnects."""


class Feed:
    """Live events numbered from 1, the latest `FEED_KEPT` kept: what the console pushes to open pages."""

    def __init__(self) -> None:
        self.seq = 0
        self.events: deque[tuple[int, dict[str, Any]]] = deque(maxlen=FEED_KEPT)

    def add(self, events: list[dict[str, Any]]) -> None:
        for event in events:
            self.seq += 1
            self.events.append((self.seq, event))

    def after(self, seq: int) -> list[tuple[int, dict[str, Any]]]:
        """The events numbered above `seq` still kept."""
        return [(n, e) for n, e in self.events if n > seq] if seq < self.seq else []


class Packer:
    """Compresses what a history keeps, as JSON with zlib and a preset dictionary: the first
    strategy receipt it is given (receipts of one worker share their field names, metrics, cohort
    keys and verdicts, so a receipt of 12 cohorts packs to ~0.8 kB against ~2.4 kB without).
    One per `History`, fixed once set: everything it packed unpacks with it, and it is pickled
    (into a checkpoint) with the history. What is read back is what the JSON of it reads (as
    the console serves it): tuples come back as lists."""

    __slots__ = ("zdict",)

    def __init__(self) -> None:
        self.zdict = b""

    def pack(self, obj: object) -> bytes:
        text = json.dumps(obj, separators=(",", ":")).encode()
        if not self.zdict:
            self.zdict = text[:ZDICT_BYTES]
        z = zlib.compressobj(6, zdict=self.zdict)
        return z.compress(text) + z.flush()

    def unpack(self, data: bytes) -> Any:
        z = zlib.decompressobj(zdict=self.zdict)
        return json.loads(z.decompress(data) + z.flush())


ZDICT_BYTES = 32_768
"""zlib looks back at most 32 kB: a longer dictionary would be cut to its end."""


DIGEST_HEAD = ("receipt_id", "seq", "issued_at", "review_status", "tactics", "actions")
"""A receipt digest's fields a mission list reads (its latest receipt, its rate of actions)."""


class Receipts(Sequence[dict[str, Any]]):
    """Digests (`digest`) of a mission's latest `maxlen` strategy receipts, oldest first, read as a
    list of them would be (every index and slice; what is read is a copy). Kept small: the latest
    receipt is kept whole and packed (`last`), its digest made from it when read; older ones as
    packed digests (a digest of 12 cohorts is ~11 kB as dicts); the `DIGEST_HEAD` fields of each
    as a little JSON text, for `heads` to read without unpacking (a list of 10,000 missions
    reads two of each). A receipt costs one unpack more when the next one comes (~0.2 ms)."""

    __slots__ = ("_heads", "_last", "_older", "_packer", "maxlen")

    def __init__(self, packer: Packer, maxlen: int) -> None:
        self._packer, self.maxlen = packer, maxlen
        self._older: list[bytes] = []
        self._heads: list[bytes] = []
        self._last: bytes | None = None

    def add(self, receipt: dict[str, Any]) -> dict[str, Any]:
        """Keep a strategy receipt; its digest."""
        if self._last is not None:
            self._older.append(self._packer.pack(digest(self._packer.unpack(self._last))))
            del self._older[:max(0, len(self._older) - (self.maxlen - 1))]
        self._last = self._packer.pack(receipt)
        d = digest(receipt)
        self._heads.append(json.dumps([d.get(k) for k in DIGEST_HEAD], separators=(",", ":")).encode())
        del self._heads[:max(0, len(self._heads) - self.maxlen)]
        return d

    @property
    def last(self) -> dict[str, Any] | None:
        """The latest strategy receipt, whole (as its JSON reads)."""
        got: dict[str, Any] | None = self._packer.unpack(self._last) if self._last is not None else None
        return got

    def heads(self, latest: int) -> list[dict[str, Any]]:
        """The `DIGEST_HEAD` fields of the latest `latest` digests, oldest first."""
        kept = self._heads[len(self._heads) - min(max(latest, 0), len(self._heads)):]
        return [dict(zip(DIGEST_HEAD, json.loads(h), strict=True)) for h in kept]

    def __len__(self) -> int:
        return len(self._older) + (self._last is not None)

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        i = range(len(self))[index]  # IndexError as a list's
        if i < len(self._older):
            older: dict[str, Any] = self._packer.unpack(self._older[i])
            return older
        return digest(self._packer.unpack(self._last or b""))

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (self[i] for i in range(len(self)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Receipts) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]


def _bounded(items: list[dict[str, Any]] | None, item: dict[str, Any], kept: int) -> list[dict[str, Any]]:
    """`items` (a new list for None) with `item` appended and only its latest `kept` left: a list,
    not a deque (an empty deque is ~600 bytes, a list of one 64)."""
    items = [] if items is None else items
    items.append(item)
    del items[:max(0, len(items) - kept)]
    return items


def digest(receipt: dict[str, Any]) -> dict[str, Any]:
    """A strategy receipt cut to what a chart over time needs: per fairness metric and cohort
    the estimate, interval and verdict; per risk signal its ratio and verdict; the tactic mix."""
    fairness = {m: {c: {"estimate": v.get("estimate"), "interval": v.get("interval"), "gap": v.get("gap"),
                        "verdict": v.get("verdict")} for c, v in sorted(cohorts.items())}
                for m, cohorts in sorted((receipt.get("fairness") or {}).items())}
    risk = {name: {"ratio": s.get("ratio"), "value": s.get("value"), "baseline": s.get("baseline"),
                   "verdict": s.get("verdict")} for name, s in sorted((receipt.get("risk_signals") or {}).items())}
    totals = receipt.get("totals") or {}
    return {"receipt_id": receipt.get("receipt_id"), "seq": receipt.get("seq"), "issued_at": receipt.get("issued_at"),
            "state": receipt.get("state"), "review_status": receipt.get("review_status"),
            "tactics": receipt.get("tactics"), "tactic_mix": receipt.get("tactic_mix"),
            "open_escalations": receipt.get("open_escalations"), "actions": totals.get("actions"),
            "window": receipt.get("window"), "fairness": fairness, "risk": risk}


class MissionHistory:
    """One mission's history. What a mission has none of yet costs nothing (made at its first
    item), and its receipts are kept packed (`Receipts`): a worker holds one history per
    mission, and the console reads them only when asked."""

    __slots__ = ("_controls", "_escalations", "_packer", "_receipts", "_reviews")

    def __init__(self, packer: Packer | None = None) -> None:
        self._packer = packer if packer is not None else Packer()
        self._receipts: Receipts | None = None
        self._escalations: OrderedDict[str, dict[str, Any]] | None = None
        self._controls: list[dict[str, Any]] | None = None
        self._reviews: list[dict[str, Any]] | None = None

    def _parts(self) -> tuple[object, ...]:
        return (list(self.receipts), self.last_receipt, dict(self.escalations), list(self.controls),
                list(self.reviews))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MissionHistory) and self._parts() == other._parts()

    __hash__ = None  # type: ignore[assignment]

    @property
    def receipts(self) -> Sequence[dict[str, Any]]:
        """Digests of the latest `RECEIPTS_KEPT` strategy receipts, oldest first."""
        return self._receipts if self._receipts is not None else ()

    def latest(self, n: int) -> list[dict[str, Any]]:
        """`DIGEST_HEAD`'s fields of the latest `n` receipt digests, oldest first, without unpacking them."""
        return self._receipts.heads(n) if self._receipts is not None else []

    @property
    def last_receipt(self) -> dict[str, Any] | None:
        """The latest strategy receipt, whole (as its JSON reads)."""
        return self._receipts.last if self._receipts is not None else None

    @property
    def escalations(self) -> Mapping[str, dict[str, Any]]:
        """The latest `ESCALATIONS_KEPT` escalations by id, oldest first."""
        return self._escalations if self._escalations is not None else _NONE

    @property
    def controls(self) -> Sequence[dict[str, Any]]:
        return self._controls if self._controls is not None else ()

    @property
    def reviews(self) -> Sequence[dict[str, Any]]:
        return self._reviews if self._reviews is not None else ()

    def take(self, rec: dict[str, Any]) -> dict[str, Any] | None:
        """Keep one out record; the event it makes for a live feed (None for none)."""
        schema, mid = rec.get("schema"), rec.get("mission_id")
        if schema == SCHEMA_STRATEGY:
            if self._receipts is None:
                self._receipts = Receipts(self._packer, RECEIPTS_KEPT)
            d = self._receipts.add(rec)
            return {"kind": "receipt", "mission_id": mid, "id": d["receipt_id"], "issued_at": d["issued_at"],
                    "state": d["state"], "review_status": d["review_status"]}
        if schema == SCHEMA_ESCALATION:
            eid = str(rec.get("escalation_id"))
            if self._escalations is None:
                self._escalations = OrderedDict()
            self._escalations[eid] = rec
            while len(self._escalations) > ESCALATIONS_KEPT:
                self._escalations.popitem(last=False)
            return {"kind": "escalation", "mission_id": mid, "id": eid, "issued_at": rec.get("issued_at"),
                    "severity": rec.get("severity"), "reason": rec.get("reason")}
        if schema == SCHEMA_CONTROL:
            c = {k: rec.get(k) for k in ("state", "cause", "seq", "issued_at")}
            self._controls = _bounded(self._controls, c, CONTROLS_KEPT)
            return {"kind": "control", "mission_id": mid, **c}
        return None

    def review(self, rec: dict[str, Any], key_id: str | None) -> dict[str, Any]:
        r = {k: rec.get(k) for k in ("review_id", "escalation_id", "reviewer", "decision", "note", "occurred_at")}
        r["key_id"] = key_id
        self._reviews = _bounded(self._reviews, r, REVIEWS_KEPT)
        return {"kind": "review", "mission_id": rec.get("mission_id"), "id": r["review_id"],
                "decision": r["decision"], "reviewer": r["reviewer"]}


def review_outcomes(step: Step, message: bytes) -> list[tuple[str, str, dict[str, Any]]]:
    """The reviews a message carried and their fate: (mission_id, review_id, {"outcome":
    "accepted"} or {"outcome": "refused", "code", "reason"}). A refused review is found by
    reading the message again (a rejection keeps only an excerpt); a message that is not
    JSON names no review."""
    out = [(str(a.record.get("mission_id")), str(a.record.get("review_id")), {"outcome": "accepted"})
           for a in step.accepted if a.kind == "review" and not a.duplicate]
    if not step.rejected or SCHEMA_REVIEW.encode() not in message:
        return out
    try:
        doc = json.loads(message)
    except ValueError:
        return out
    items: list[Any] = doc["items"] if isinstance(doc, dict) and isinstance(doc.get("items"), list) else [doc]
    for r in step.rejected:  # an item's rejection names it; a whole message's covers every item
        named = items if r.item is None else items[r.item:r.item + 1] if 0 <= r.item < len(items) else []
        out += [(str(rec.get("mission_id")), rec["review_id"], {"outcome": "refused", "code": r.code,
                                                                "reason": r.reason})
                for rec in named if isinstance(rec, dict) and rec.get("schema") == SCHEMA_REVIEW
                and isinstance(rec.get("review_id"), str)]
    return out


class History:
    """The console's memory of the missions of one partition."""

    def __init__(self) -> None:
        self.packer = Packer()
        """Packs the receipts of every mission here (one dictionary for all)."""
        self.missions: dict[str, MissionHistory] = {}
        self.outcomes: OrderedDict[str, dict[str, Any]] = OrderedDict()
        """Fate of the latest reviews, by review_id (the console answers a review with it)."""

    def get(self, mission_id: str) -> MissionHistory | None:
        return self.missions.get(mission_id)

    def _mission(self, mission_id: str) -> MissionHistory:
        h = self.missions.get(mission_id)
        if h is None:
            h = self.missions[mission_id] = MissionHistory(self.packer)
        return h

    def take(self, step: Step, message: bytes) -> list[dict[str, Any]]:
        """Keep what one message caused; the events it makes for a live feed, in order."""
        events: list[dict[str, Any]] = []
        for a in step.accepted:
            if a.kind == "review" and not a.duplicate:
                events.append(self._mission(str(a.record.get("mission_id"))).review(a.record, a.key_id))
        for rec in step.out:
            ev = self._mission(str(rec.get("mission_id"))).take(rec)
            if ev is not None:
                events.append(ev)
        for mid, rid, fate in review_outcomes(step, message):
            self.outcomes[rid] = {"mission_id": mid, "review_id": rid, **fate}
            self.outcomes.move_to_end(rid)
            while len(self.outcomes) > OUTCOMES_KEPT:
                self.outcomes.popitem(last=False)
            if fate["outcome"] == "refused":
                events.append({"kind": "review_refused", "mission_id": mid, "id": rid, "code": fate["code"],
                               "reason": fate["reason"]})
        return events
