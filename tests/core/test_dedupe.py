"""Dedupe: an identical duplicate is accepted, counted and changes nothing; a conflicting one
(same id, other content) is refused and the first stands. Ids are unique within their mission,
per kind, whether a record comes alone or inside a batch."""

from __future__ import annotations

import json
from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, Signer
from missionwatch.spec import SpecRegistry
from tests.conftest import action, feed, line, registration, review, stamp

BATCH = "missionwatch/batch@1"


def outcome(oid: str = "o-1", subject: str = "cust-1", kind: str = "complaint") -> dict[str, Any]:
    return {"schema": "missionwatch/outcome@1", "outcome_id": oid, "mission_id": "m-1",
            "subject": {"id": subject}, "outcome_type": kind, "occurred_at": stamp(120)}


def state(monitor: Monitor) -> tuple[Any, ...]:
    ms = monitor.missions["m-1"]
    return ms.n_actions, ms.n_outcomes, ms.seq, ms.state, json.dumps(ms.ledger.rows("m-1"))


def test_duplicates_change_nothing_and_are_counted(monitor: Monitor, keys: dict[str, Signer]) -> None:
    rec = line(keys["gate"].sign(action(1)))
    monitor.feed(rec)
    cells = monitor.missions["m-1"].ledger.totals()
    step = monitor.feed(rec)
    assert step.accepted[0].duplicate and not step.rejected
    # the same receipt inside a batch envelope is the same receipt
    monitor.feed(line({"schema": "missionwatch/batch@1", "batch_id": "b", "items": [json.loads(rec)]}))
    assert monitor.missions["m-1"].ledger.totals() == cells
    assert monitor.missions["m-1"].duplicates == 2 and monitor.missions["m-1"].n_actions == 1


def test_ids_are_unique_within_their_mission(monitor: Monitor, keys: dict[str, Signer]) -> None:
    """The mission is the unit a stream partitions by: a worker sees one mission's records,
    so replay too checks receipt ids within the mission (stream == replay)."""
    first = action(1, mission="m-1")
    other = {**action(1, mission="m-2"), "receipt_id": first["receipt_id"]}
    assert not feed(monitor, keys["gate"], first).rejected
    step = feed(monitor, keys["gate"], other)
    assert not step.rejected and not step.accepted[0].duplicate
    assert monitor.missions["m-2"].n_actions == 1
    conflict = feed(monitor, keys["gate"], {**other, "agent_id": "agent:v2"})
    assert [r.code for r in conflict.rejected] == ["conflicting_duplicate"]


def test_ids_are_unique_per_kind(monitor: Monitor, keys: dict[str, Signer]) -> None:
    """A receipt, an outcome and a review may share an id string: they are different records."""
    gate = keys["gate"]
    feed(monitor, gate, {**action(1), "receipt_id": "x-1"})
    o = feed(monitor, gate, outcome("x-1"))
    v = feed(monitor, keys["reviewer"], review("acknowledge", rid="x-1"))
    assert not o.rejected and not v.rejected
    assert [a.duplicate for a in o.accepted + v.accepted] == [False, False]
    assert monitor.missions["m-1"].duplicates == 0


def test_identical_outcomes_reviews_and_registrations_are_counted_duplicates(monitor: Monitor,
                                                                           keys: dict[str, Signer]) -> None:
    gate, reviewer = keys["gate"], keys["reviewer"]
    records = [(gate, registration()), (gate, action(1, subject="cust-1")), (gate, outcome()),
               (reviewer, review("pause"))]
    for signer, rec in records:
        feed(monitor, signer, rec)
    before = state(monitor)
    assert before[3] == "paused"
    for n, (signer, rec) in enumerate(records, 1):
        step = feed(monitor, signer, rec)
        assert [a.duplicate for a in step.accepted] == [True] and not step.rejected and not step.out
        assert monitor.missions["m-1"].duplicates == n
    assert state(monitor) == before
    view = monitor.view("m-1")
    assert view is not None and view.totals["duplicates"] == 4


@pytest.mark.parametrize("kind", ["action", "outcome", "review"])
def test_a_conflicting_duplicate_is_refused_and_the_first_stands(monitor: Monitor, keys: dict[str, Signer],
                                                                 kind: str) -> None:
    gate, reviewer = keys["gate"], keys["reviewer"]
    feed(monitor, gate, action(1, subject="cust-1"))
    first: dict[str, Any] = {"action": action(2, subject="cust-1"), "outcome": outcome(),
                             "review": review("acknowledge")}[kind]
    signer = reviewer if kind == "review" else gate
    assert not feed(monitor, signer, first).rejected
    before = state(monitor)
    changed = {"action": {"decision": "denied"}, "outcome": {"outcome_type": "churn"},
               "review": {"decision": "pause"}}[kind]
    step = feed(monitor, signer, {**first, **changed})
    assert [r.code for r in step.rejected] == ["conflicting_duplicate"] and not step.accepted and not step.out
    field = {"action": "receipt_id", "outcome": "outcome_id", "review": "review_id"}[kind]
    assert step.rejected[0].reason.startswith(f"{field} {first[field]!r} was already accepted")
    assert state(monitor) == before and monitor.missions["m-1"].duplicates == 0
    again = feed(monitor, signer, first)  # the first is still the one on record
    assert [a.duplicate for a in again.accepted] == [True]


def test_a_record_then_the_same_record_in_a_batch_is_a_duplicate(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    feed(monitor, gate, action(1))
    before = state(monitor)
    # in a signed batch the item carries no signature of its own: the content is what counts
    step = monitor.feed(line(gate.sign({"schema": BATCH, "batch_id": "b", "items": [action(1), action(2)]})))
    assert [a.duplicate for a in step.accepted] == [True, False] and not step.rejected
    assert state(monitor)[0] == before[0] + 1 and monitor.missions["m-1"].duplicates == 1


def test_a_batch_then_one_of_its_records_alone_is_a_duplicate(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    monitor.feed(line(gate.sign({"schema": BATCH, "batch_id": "b", "items": [action(1), action(2)]})))
    before = state(monitor)
    step = feed(monitor, gate, action(2))
    assert [a.duplicate for a in step.accepted] == [True] and not step.out
    assert state(monitor) == before and monitor.missions["m-1"].duplicates == 1


def test_a_conflict_inside_a_batch_refuses_that_item_only(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    feed(monitor, gate, action(1))
    items = [action(2), {**action(1), "decision": "denied"}, action(3), action(2)]
    step = monitor.feed(line(gate.sign({"schema": BATCH, "batch_id": "b", "items": items})))
    assert [(r.item, r.code) for r in step.rejected] == [(1, "conflicting_duplicate")]
    assert [(a.record["receipt_id"], a.duplicate) for a in step.accepted] == [
        ("r-m-1-2", False), ("r-m-1-3", False), ("r-m-1-2", True)]
    assert monitor.missions["m-1"].n_actions == 3 and monitor.missions["m-1"].duplicates == 1


def test_identical_content_signed_by_another_gate_key_is_a_duplicate(registry: SpecRegistry,
                                                                     keys: dict[str, Signer]) -> None:
    """What is compared is the record's content: a gate that re-signs it with a new key
    resends the same record."""
    old, new = keys["gate"], Signer.generate("gate-2")
    ring = Keyring()
    ring.add("gate-1", old.public_key, "gate")
    ring.add("gate-2", new.public_key, "gate")
    m = Monitor(registry, signer=keys["monitor"], keyring=ring)
    assert not feed(m, old, action(1)).accepted[0].duplicate
    step = feed(m, new, action(1))
    assert [(a.duplicate, a.key_id) for a in step.accepted] == [(True, "gate-2")]
    assert m.missions["m-1"].n_actions == 1
