"""Admission: what may enter a mission, and why not. Every rejection code has a case; roles,
signatures, batches, allow_unsigned and the time window are checked one rule at a time;
fuzzed input never raises and never reaches the ledger."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missionwatch.canonical import record_hash
from missionwatch.codes import RejectionCode
from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from tests.conftest import (
    action,
    feed,
    line,
    paused_awaiting_a_second_reviewer,
    registration,
    review,
    stamp,
)

DAY = 86_400
BATCH = "missionwatch/batch@1"


def test_accepts_and_ledgers_a_signed_action(monitor: Monitor, keys: dict[str, Signer]) -> None:
    step = feed(monitor, keys["gate"], action(1, action_type="offer.discount", discount_pct=10.0))
    assert not step.rejected and len(step.accepted) == 1
    ms = monitor.missions["m-1"]
    assert not ms.registered and ms.spec.name == "default"
    totals = ms.ledger.totals()
    assert totals[("*", "*")]["type:offer.discount"] == 1
    assert totals[("*", "*")]["attr:offer.discount:discount_pct:sum"] == 10.0


# ------------------------------------------------------------ every rejection code
def _cases(keys: dict[str, Signer]) -> dict[str, str | bytes]:
    gate, reviewer = keys["gate"], keys["reviewer"]
    good = gate.sign(action(1))
    other = dict(good)
    other["decision"] = "denied"
    return {
        "malformed_json": '{"schema": ',
        "not_an_object": "[1, 2]",
        "missing_schema": line({"mission_id": "m"}),
        "unknown_schema": line({"schema": "missionwatch/action@9"}),
        "not_an_input": line({"schema": "missionwatch/control@1", "mission_id": "m"}),
        "invalid_field": line(gate.sign({**action(2), "occurred_at": "yesterday"})),
        "not_canonical": '{"schema": "missionwatch/action@1", "x": "\\ud800"}',
        "signature_missing": line(action(3)),
        "unknown_key": line(keys["stranger"].sign(action(4))),
        "wrong_role": line(reviewer.sign(action(5))),
        "unsupported_alg": line({**good, "signature": {**good["signature"], "alg": "rsa"}}),
        "bad_signature": line({**good, "agent_id": "forged"}),
        "bad_batch_signature": line({**gate.sign({"schema": "missionwatch/batch@1", "batch_id": "b",
                                                  "items": [action(6)]}), "batch_id": "b2"}),
        "nested_batch": line({"schema": "missionwatch/batch@1", "batch_id": "b",
                              "items": [{"schema": "missionwatch/batch@1", "batch_id": "c", "items": []}]}),
        "empty_batch": line({"schema": "missionwatch/batch@1", "batch_id": "b", "items": []}),
        "conflicting_duplicate": line(gate.sign(other)),
        "conflicting_registration": line(gate.sign({**registration("m-reg"), "objective": "other"})),
        "late_registration": line(gate.sign(registration("m-1"))),
        "unknown_spec": line(gate.sign(registration("m-x", spec="nope"))),
        "unknown_escalation": line(reviewer.sign(review("acknowledge", "esc-none"))),
        "mission_terminated": line(reviewer.sign({**review("acknowledge"), "mission_id": "m-term",
                                                  "review_id": "rv-t2"})),
        "message_too_large": line(gate.sign(action(7, **{f"a{k}": "x" * 4000 for k in range(20)}))),
        "too_deep": line(gate.sign(action(8, nested=_nest(40)))),
        "duplicate_key": '{"schema": "missionwatch/action@1", "schema": "missionwatch/review@1"}',
        "number_out_of_range": '{"schema": "missionwatch/action@1", "x": ' + "9" * 5000 + "}",
        "string_too_long": line(gate.sign(action(9, note="x" * 9000))),
        "too_many_items": line({"schema": "missionwatch/batch@1", "batch_id": "b", "items": [1] * 10_001}),
        "mixed_batch": line(gate.sign({"schema": "missionwatch/batch@1", "batch_id": "bm",
                                       "items": [action(10), action(11, mission="m-other")]})),
        "implausible_time": line(gate.sign({**action(12), "occurred_at": "2099-05-01T00:00:00Z"})),
        "review_out_of_order": line(reviewer.sign({**review("resume", "rv-p1", rid="rv-o1"),
                                                   "mission_id": "m-ooo", "occurred_at": stamp(5_000)})),
        "resume_without_cause": line(reviewer.sign(review("resume", rid="rv-r1"))),
        "reviewer_out_of_scope": line(keys["scoped"].sign({**review("acknowledge", rid="rv-s1"),
                                                           "reviewer": "user:kim"})),
        "reviewer_not_key_holder": line(keys["scoped"].sign(review("acknowledge", rid="rv-s2"))),  # names user:lee
        "second_reviewer_required": line(reviewer.sign({**review("resume", "esc-2r", rid="rv-2r"),
                                                        "mission_id": "m-two"})),
        "internal_error": line(gate.sign({"schema": "missionwatch/outcome@1", "outcome_id": "o-boom",
                                          "mission_id": "m-1", "subject": {"id": "cust-1"},
                                          "outcome_type": "complaint", "occurred_at": stamp(120)})),
    }


def _nest(depth: int) -> Any:
    v: Any = 1
    for _ in range(depth):
        v = {"a": v}
    return v


def _boom(*args: Any) -> None:
    raise ZeroDivisionError("a bug")


def test_every_rejection_code_has_a_case_and_a_reason(monitor: Monitor, keys: dict[str, Signer],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    gate, reviewer = keys["gate"], keys["reviewer"]
    feed(monitor, gate, action(1))
    feed(monitor, gate, registration("m-reg"))
    feed(monitor, gate, action(1, mission="m-term"))
    feed(monitor, reviewer, {**review("terminate"), "mission_id": "m-term", "review_id": "rv-t1"})
    feed(monitor, gate, action(1, mission="m-ooo"))
    feed(monitor, reviewer, {**review("pause", rid="rv-p1"), "mission_id": "m-ooo"})
    paused_awaiting_a_second_reviewer(monitor, gate, "m-two", "esc-2r", ("user:lee", "reviewer-1"))
    cases = _cases(keys)
    assert set(cases) == set(get_args(RejectionCode))
    before = {m: (ms.n_actions, dict(ms.ledger.cells)) for m, ms in monitor.missions.items()}
    for code, text in cases.items():
        if code == "internal_error":  # no input makes the core raise; stand in for a bug
            monkeypatch.setattr(monitor, "_on_outcome", _boom)
        step = monitor.feed(text)
        assert [r.code for r in step.rejected] == [code], (code, step.rejected)
        assert step.rejected[0].reason and not step.accepted and not step.out
    after = {m: (ms.n_actions, dict(ms.ledger.cells)) for m, ms in monitor.missions.items()}
    assert after == before


def test_reasons_are_precise(monitor: Monitor, keys: dict[str, Signer]) -> None:
    step = monitor.feed(line(keys["gate"].sign({**action(2), "occurred_at": "yesterday", "decision": "maybe"})))
    reason = step.rejected[0].reason
    assert "occurred_at" in reason and "RFC 3339" in reason and "decision" in reason and "'maybe'" in reason


def test_rejections_are_counted_by_code(monitor: Monitor, keys: dict[str, Signer]) -> None:
    monitor.feed("not json")
    monitor.feed(line(action(1)))
    monitor.feed(line(action(2)))
    feed(monitor, keys["gate"], action(3))
    assert {k: v for k, v in monitor.counts.items() if k.startswith("rejected:")} == {
        "rejected:malformed_json": 1, "rejected:signature_missing": 2}


# ----------------------------------------------------------------------- roles
def _input(kind: str) -> dict[str, Any]:
    return {"registration": registration("m-new"), "action": action(2),
            "outcome": {"schema": "missionwatch/outcome@1", "outcome_id": "o-1", "mission_id": "m-1",
                        "subject": {"id": "cust-1"}, "outcome_type": "complaint", "occurred_at": stamp(60)},
            "review": review("pause")}[kind]


@pytest.mark.parametrize(("kind", "role"), [
    (kind, role) for kind in ("registration", "action", "outcome", "review")
    for role in ("gate", "reviewer", "monitor")])
def test_each_input_is_signed_by_its_role(monitor: Monitor, keys: dict[str, Signer], kind: str,
                                          role: str) -> None:
    """Gates vouch for registrations, actions and outcomes; reviewers for reviews; the monitor's
    own key for nothing that comes in."""
    feed(monitor, keys["gate"], action(1))
    step = feed(monitor, keys[role], _input(kind))
    allowed = "reviewer" if kind == "review" else "gate"
    if role == allowed:
        assert not step.rejected and [a.kind for a in step.accepted] == [
            "mission" if kind == "registration" else kind]
        assert step.accepted[0].key_id == keys[role].key_id
    else:
        assert [r.code for r in step.rejected] == ["wrong_role"] and not step.accepted
        assert f"role {role!r}" in step.rejected[0].reason and repr(allowed) in step.rejected[0].reason


def test_reviewer_batch_cannot_carry_actions(monitor: Monitor, keys: dict[str, Signer]) -> None:
    batch = keys["reviewer"].sign({"schema": "missionwatch/batch@1", "batch_id": "b", "items": [action(1)]})
    assert monitor.feed(line(batch)).rejected[0].code == "wrong_role"


def test_gate_batch_cannot_carry_an_unsigned_review(monitor: Monitor, keys: dict[str, Signer]) -> None:
    feed(monitor, keys["gate"], action(1))
    batch = keys["gate"].sign({"schema": BATCH, "batch_id": "b", "items": [action(2), review("pause")]})
    step = monitor.feed(line(batch))
    assert [(r.item, r.code) for r in step.rejected] == [(1, "wrong_role")]
    assert [a.kind for a in step.accepted] == ["action"] and monitor.missions["m-1"].state == "running"


# ------------------------------------------------------------------ signatures
def test_the_accepted_record_names_its_key_and_content_hash(monitor: Monitor, keys: dict[str, Signer]) -> None:
    signed = keys["gate"].sign(action(1))
    acc = monitor.feed(line(signed)).accepted[0]
    assert acc.key_id == "gate-1" and acc.batch_hash is None and not acc.duplicate
    assert acc.hash == record_hash(signed) == record_hash(action(1))  # the signature is not content


@pytest.mark.parametrize("field", ["receipt_id", "mission_id", "agent_id", "action_type", "decision",
                                   "subject", "attributes", "occurred_at", "extra"])
def test_a_signature_covers_every_field(monitor: Monitor, keys: dict[str, Signer], field: str) -> None:
    signed = keys["gate"].sign(action(1, discount_pct=5.0))
    changed = {"receipt_id": "r-m-1-2", "mission_id": "m-2", "agent_id": "agent:v2", "action_type": "email.open",
               "decision": "denied", "subject": {"id": "cust-1", "cohort": {"segment": "mid"}},
               "attributes": {"discount_pct": 50.0}, "occurred_at": stamp(61), "extra": 1}[field]
    step = monitor.feed(line({**signed, field: changed}))
    assert [r.code for r in step.rejected] == ["bad_signature"] and not monitor.missions


@pytest.mark.parametrize("value", ["***", "borrowed"])
def test_a_garbled_or_borrowed_signature_is_a_bad_signature(monitor: Monitor, keys: dict[str, Signer],
                                                            value: str) -> None:
    other = keys["gate"].sign(action(2))["signature"]  # a good signature, of another record
    signature = {**other, "value": value} if value == "***" else other
    step = monitor.feed(line({**action(1), "signature": signature}))
    assert [r.code for r in step.rejected] == ["bad_signature"] and not monitor.missions


# --------------------------------------------------------------------- batches
def test_signed_batch_items_need_no_own_signature(monitor: Monitor, keys: dict[str, Signer]) -> None:
    batch = keys["gate"].sign({"schema": "missionwatch/batch@1", "batch_id": "b-1",
                               "items": [action(1), action(2), {"schema": "missionwatch/review@1"}, action(1)]})
    step = monitor.feed(line(batch))
    assert [a.duplicate for a in step.accepted] == [False, False, True]
    assert [(r.item, r.code) for r in step.rejected] == [(2, "invalid_field")]
    assert all(a.batch_hash and a.key_id == "gate-1" for a in step.accepted)


def test_unsigned_batch_items_must_be_signed(monitor: Monitor, keys: dict[str, Signer]) -> None:
    batch = {"schema": "missionwatch/batch@1", "batch_id": "b-1",
             "items": [keys["gate"].sign(action(1)), action(2)]}
    step = monitor.feed(line(batch))
    assert len(step.accepted) == 1 and [(r.item, r.code) for r in step.rejected] == [(1, "signature_missing")]


def test_an_items_own_signature_is_checked_inside_a_signed_batch(monitor: Monitor,
                                                                 keys: dict[str, Signer]) -> None:
    forged = {**keys["gate"].sign(action(2)), "decision": "denied"}
    batch = keys["gate"].sign({"schema": BATCH, "batch_id": "b", "items": [action(1), forged, action(3)]})
    step = monitor.feed(line(batch))
    assert [(r.item, r.code) for r in step.rejected] == [(1, "bad_signature")]
    assert [a.record["receipt_id"] for a in step.accepted] == ["r-m-1-1", "r-m-1-3"]
    assert step.rejected[0].record is not None and '"decision":"denied"' in step.rejected[0].record


def test_a_batch_signed_by_an_unknown_key_is_refused_whole(monitor: Monitor, keys: dict[str, Signer]) -> None:
    batch = keys["stranger"].sign({"schema": BATCH, "batch_id": "b", "items": [action(1), action(2)]})
    step = monitor.feed(line(batch))
    assert [(r.item, r.code) for r in step.rejected] == [(None, "unknown_key")] and not monitor.missions


def test_a_batch_hash_is_shared_by_its_items(monitor: Monitor, keys: dict[str, Signer]) -> None:
    batch = keys["gate"].sign({"schema": BATCH, "batch_id": "b", "items": [action(1), action(2)]})
    step = monitor.feed(line(batch))
    assert {a.batch_hash for a in step.accepted} == {record_hash(batch)}
    assert [a.hash for a in step.accepted] == [record_hash(action(1)), record_hash(action(2))]


# --------------------------------------------------------------- allow_unsigned
def test_allow_unsigned_never_allows_a_bad_signature(registry, keys, keyring) -> None:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring, allow_unsigned=True)
    assert not m.feed(line(action(1))).rejected
    forged = {**keys["gate"].sign(action(2)), "agent_id": "x"}
    assert m.feed(line(forged)).rejected[0].code == "bad_signature"


def test_allow_unsigned_admits_only_the_unsigned(registry, keys, keyring) -> None:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring, allow_unsigned=True)
    alone = m.feed(line(action(1)))
    batch = m.feed(line({"schema": BATCH, "batch_id": "b", "items": [action(2), action(3)]}))
    assert [a.key_id for a in alone.accepted + batch.accepted] == [None, None, None]
    assert [r.code for r in m.feed(line(keys["stranger"].sign(action(4)))).rejected] == ["unknown_key"]
    assert [r.code for r in m.feed(line(keys["reviewer"].sign(action(5)))).rejected] == ["wrong_role"]
    assert m.missions["m-1"].n_actions == 3


# ----------------------------------------------------------------- time window
@pytest.mark.parametrize(("registered", "offset", "ok"), [
    (True, -DAY, True), (True, -DAY - 1, False),  # a registered mission: its skew (1d) before its start
    (True, 400 * DAY, True), (True, 400 * DAY + 1, False),  # and its horizon (400d) after
    (False, -400 * DAY, True), (False, -400 * DAY - 1, False),  # an unregistered one: the horizon both ways
    (False, 400 * DAY, True), (False, 400 * DAY + 1, False),
])
def test_event_times_fall_within_the_missions_window(monitor: Monitor, keys: dict[str, Signer], registered: bool,
                                                     offset: int, ok: bool) -> None:
    gate = keys["gate"]
    feed(monitor, gate, registration() if registered else action(0, t=0))
    ms = monitor.missions["m-1"]
    before = (ms.n_actions, dict(ms.ledger.cells))
    step = feed(monitor, gate, action(1, t=offset))
    if ok:
        assert not step.rejected and ms.n_actions == before[0] + 1
        return
    assert [r.code for r in step.rejected] == ["implausible_time"]
    assert (ms.n_actions, dict(ms.ledger.cells)) == before
    reason = step.rejected[0].reason
    if offset > 0:
        assert "more than 400d after mission 'm-1' started" in reason
    elif registered:
        assert "more than 1d before mission 'm-1' started" in reason
    else:
        assert "more than 400d before mission 'm-1' first record was dated" in reason


def test_outcomes_and_reviews_are_held_to_the_window_too(monitor: Monitor, keys: dict[str, Signer]) -> None:
    feed(monitor, keys["gate"], registration())
    outcome = {**_input("outcome"), "occurred_at": stamp(-DAY - 1)}
    assert [r.code for r in feed(monitor, keys["gate"], outcome).rejected] == ["implausible_time"]
    late = review("pause", t=400 * DAY + 1)
    assert [r.code for r in feed(monitor, keys["reviewer"], late).rejected] == ["implausible_time"]
    assert monitor.missions["m-1"].state == "running" and monitor.missions["m-1"].n_outcomes == 0


def test_the_first_record_of_an_unregistered_mission_sets_its_window(monitor: Monitor,
                                                                    keys: dict[str, Signer]) -> None:
    """The window is the mission's: another mission's first record may be dated anywhere."""
    feed(monitor, keys["gate"], action(0, t=0))
    far = feed(monitor, keys["gate"], action(1, mission="m-2", t=500 * DAY))
    assert not far.rejected and monitor.missions["m-2"].anchor == monitor.missions["m-1"].anchor + 500 * DAY


# ------------------------------------------------------------------------ fuzz
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=10)


def _mutations(rec: dict[str, Any]) -> st.SearchStrategy[str]:
    text = line(rec)
    fields = sorted(rec)
    return st.one_of(
        st.integers(0, len(text) - 1).map(lambda i: text[:i]),  # truncated
        st.tuples(st.sampled_from(fields), json_values).map(lambda kv: line({**rec, kv[0]: kv[1]})),
        st.sampled_from(fields).map(lambda k: line({x: v for x, v in rec.items() if x != k})),
        json_values.map(lambda v: json.dumps(v, allow_nan=True)),
        st.binary(max_size=40),
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_core_never_raises_and_ledger_is_that_of_good_records(registry, keys, keyring, data) -> None:
    gate: Signer = keys["gate"]
    good = [gate.sign(action(i, action_type="offer.discount", discount_pct=5.0)) for i in range(6)]
    noisy = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    clean = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    for rec in good:
        junk = data.draw(st.lists(_mutations(rec), max_size=3))
        for j in junk:
            step = noisy.feed(j)
            for r in step.rejected:
                assert r.code and r.reason
            for a in step.accepted:  # a mutation may still be a valid, correctly signed record
                assert a.duplicate or a.hash
        noisy.feed(line(rec))
        clean.feed(line(rec))
    accepted_junk = noisy.missions["m-1"].n_actions - clean.missions["m-1"].n_actions
    assert accepted_junk == 0
    assert noisy.missions["m-1"].ledger.totals() == clean.missions["m-1"].ledger.totals()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(json_values | st.text(max_size=30), max_size=8))
def test_arbitrary_input_is_rejected_with_a_reason(registry, keys, keyring, items) -> None:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    for item in items:
        text = item if isinstance(item, str) else json.dumps(item, allow_nan=True)
        step = m.feed(text)
        assert step.rejected and all(r.code and r.reason for r in step.rejected)
        assert not step.accepted
