"""The core: every rejection code, duplicates, late outcomes, batches, reviews and pauses."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest

from missionwatch.codes import RejectionCode
from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from tests.conftest import action, line, stamp


def registration(mission: str = "m-1", spec: str = "retention") -> dict[str, Any]:
    return {"schema": "missionwatch/mission@1", "mission_id": mission, "spec": spec,
            "objective": "renewals", "started_at": stamp(0)}


def feed(monitor: Monitor, signer: Signer, record: dict[str, Any]):
    return monitor.feed(line(signer.sign(record)))


def review(decision: str, escalation: str | None = None, rid: str = "rv-1", t: int = 10_000) -> dict[str, Any]:
    rec = {"schema": "missionwatch/review@1", "review_id": rid, "mission_id": "m-1", "reviewer": "user:lee",
           "decision": decision, "occurred_at": stamp(t)}
    if escalation:
        rec["escalation_id"] = escalation
    return rec


def test_accepts_and_ledgers_a_signed_action(monitor: Monitor, keys: dict[str, Signer]) -> None:
    step = feed(monitor, keys["gate"], action(1, action_type="offer.discount", discount_pct=10.0))
    assert not step.rejected and len(step.accepted) == 1
    ms = monitor.missions["m-1"]
    assert not ms.registered and ms.spec.name == "default"
    totals = ms.ledger.totals()
    assert totals[("*", "*")]["type:offer.discount"] == 1
    assert totals[("*", "*")]["attr:offer.discount:discount_pct:sum"] == 10.0


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


def test_allow_unsigned_never_allows_a_bad_signature(registry, keys, keyring) -> None:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring, allow_unsigned=True)
    assert not m.feed(line(action(1))).rejected
    forged = {**keys["gate"].sign(action(2)), "agent_id": "x"}
    assert m.feed(line(forged)).rejected[0].code == "bad_signature"


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


def test_late_and_early_outcomes_join_their_subject_cohort(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    outcome = {"schema": "missionwatch/outcome@1", "outcome_id": "o-1", "mission_id": "m-1",
               "subject": {"id": "cust-7"}, "outcome_type": "complaint", "occurred_at": stamp(5)}
    feed(monitor, gate, outcome)  # before any action of cust-7: pending
    ms = monitor.missions["m-1"]
    assert ms.ledger.totals() == {} and ms.pending_outcomes
    feed(monitor, gate, action(1, subject="cust-7", cohort={"segment": "mid", "age_band": "65+"}))
    totals = ms.ledger.totals()
    assert totals[("age_band", "65+")]["outcome:complaint"] == 1 and not ms.pending_outcomes
    late = {**outcome, "outcome_id": "o-2", "occurred_at": stamp(90_000)}
    feed(monitor, gate, late)
    assert ms.ledger.totals()[("age_band", "65+")]["outcome:complaint"] == 2
    own = {**outcome, "outcome_id": "o-3", "subject": {"id": "cust-7", "cohort": {"age_band": "18-34"}}}
    feed(monitor, gate, own)
    assert ms.ledger.totals()[("age_band", "18-34")]["outcome:complaint"] == 1


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


def test_reviewer_batch_cannot_carry_actions(monitor: Monitor, keys: dict[str, Signer]) -> None:
    batch = keys["reviewer"].sign({"schema": "missionwatch/batch@1", "batch_id": "b", "items": [action(1)]})
    assert monitor.feed(line(batch)).rejected[0].code == "wrong_role"


def _gap_mission(monitor: Monitor, gate: Signer, n: int = 3000) -> list[dict[str, Any]]:
    """A registered retention mission where age_band=65+ never gets a discount."""
    out = []
    out += feed(monitor, gate, registration()).out
    for i in range(n):
        old = i % 4 == 0
        cohort = {"segment": "smb", "tenure_band": "m4-12", "age_band": "65+" if old else "35-49",
                  "region": "north"}
        kind = "offer.discount" if (i % 2 == 1 and not old) else "email.send"
        attrs = {"discount_pct": 10.0} if kind == "offer.discount" else {"template": "renewal-v1"}
        out += feed(monitor, gate, action(i, action_type=kind, subject=f"c-{i}", cohort=cohort, **attrs)).out
    return out


def test_fairness_gap_escalates_once_with_evidence(monitor: Monitor, keys: dict[str, Signer]) -> None:
    out = _gap_mission(monitor, keys["gate"])
    escalations = [e for e in out if e["schema"] == "missionwatch/escalation@1"]
    assert [e["evidence"]["cohort"] for e in escalations] == ["age_band=65+"]
    e = escalations[0]
    assert e["detector"] == "fairness:discount_rate" and e["severity"] == "review"
    ev = e["evidence"]
    assert ev["verdict"] == "beyond" and ev["interval"][1] < 0 and ev["n"] >= 50 and ev["reference_n"] >= 50
    assert "age_band=65+" in e["reason"] and e["triggered_by"].startswith("r-m-1-")
    receipts = [r for r in out if r["schema"] == "missionwatch/strategy@1"]
    assert receipts[-1]["review_status"] == "needs_review"
    assert receipts[-1]["cohorts_affected"] == ["age_band=65+"]


def test_pause_holds_until_resume(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate, reviewer = keys["gate"], keys["reviewer"]
    _gap_mission(monitor, gate, 400)
    out = feed(monitor, reviewer, review("pause", t=30_000)).out
    assert [o["state"] for o in out if o["schema"] == "missionwatch/control@1"] == ["paused"]
    assert monitor.missions["m-1"].state == "paused"
    for i in range(400, 600):  # actions keep arriving: still paused, no detector resumes
        feed(monitor, gate, action(i, subject=f"c-{i}"))
    assert monitor.missions["m-1"].state == "paused"
    out = feed(monitor, reviewer, review("acknowledge", rid="rv-2", t=40_000)).out
    assert monitor.missions["m-1"].state == "paused"
    for bad, code in ((review("resume", rid="rv-3", t=40_000), "resume_without_cause"),
                      (review("resume", "rv-2", rid="rv-3", t=40_000), "unknown_escalation"),
                      (review("resume", "rv-1", rid="rv-3", t=20_000), "review_out_of_order")):
        assert [r.code for r in monitor.feed(line(reviewer.sign(bad))).rejected] == [code]
    assert monitor.missions["m-1"].state == "paused"
    out = feed(monitor, reviewer, review("resume", "rv-1", rid="rv-3", t=40_000)).out
    control = [o for o in out if o["schema"] == "missionwatch/control@1"]
    assert control[0]["state"] == "running" and control[0]["cause"] == "rv-3"
    assert out[-1]["schema"] == "missionwatch/strategy@1"


def test_hard_limit_pauses(registry, keys, keyring) -> None:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    gate = keys["gate"]
    feed(m, gate, registration())
    out: list[dict[str, Any]] = []
    for i in range(40):
        out += feed(m, gate, action(i, action_type="cancellation.handle", subject=f"c-{i}",
                                    delay_hours=200.0)).out
    esc = [o for o in out if o["schema"] == "missionwatch/escalation@1"]
    ctl = [o for o in out if o["schema"] == "missionwatch/control@1"]
    assert esc[0]["code"] == "hard_limit" and esc[0]["severity"] == "pause"
    assert ctl[0]["state"] == "paused" and ctl[0]["cause"] == esc[0]["escalation_id"]


@pytest.mark.parametrize("kind", ["strategy", "escalation", "control"])
def test_out_records_chain_per_mission(monitor: Monitor, keys: dict[str, Signer], kind: str) -> None:
    out = _gap_mission(monitor, keys["gate"], 2500)
    assert any(o["schema"] == f"missionwatch/{kind}@1" for o in out) or kind == "control"
    prev = None
    for seq, o in enumerate(out):
        assert o["seq"] == seq and o["prev_hash"] == prev
        prev = o["hash"]


def test_outcome_without_follows_still_feeds_fairness_and_limits(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    feed(monitor, gate, registration())
    cohort = {"segment": "smb", "tenure_band": "m4-12", "age_band": "65+", "region": "north"}
    feed(monitor, gate, action(1, subject="cust-1", cohort=cohort))
    base = {"schema": "missionwatch/outcome@1", "mission_id": "m-1", "subject": {"id": "cust-1"},
            "outcome_type": "complaint", "occurred_at": stamp(3600)}
    ms = monitor.missions["m-1"]
    fd = next(fd for fd in ms.fairness["complaint_rate"] if fd.proxy == "age_band")
    hl = ms.limits["complaint_rate"][0]
    rs = ms.risk["complaint_rate"][0]
    feed(monitor, gate, {**base, "outcome_id": "o-1"})  # no `follows`: no phase for the risk signal
    assert fd.cohorts["65+"].total == 1 and hl.stats["age_band=65+"].total == 1
    assert rs.base.total == 0
    feed(monitor, gate, {**base, "outcome_id": "o-2", "follows": "r-m-1-1"})
    assert fd.cohorts["65+"].total == 2 and hl.stats["age_band=65+"].total == 2
    assert rs.base.total == 1


def test_strict_intervals_escalate_a_rare_event_gap(tmp_path, keys: dict[str, Signer], keyring) -> None:
    """A spec with intervals = "strict": the betting sequences judge the escalation rate
    (a 0/1 metric), and their exact interval is what the escalation's evidence shows."""
    from missionwatch.spec import SpecRegistry
    from tests.conftest import SPECS

    text = (SPECS / "default.toml").read_text().replace('bucket = "1h"', 'bucket = "1h"\nintervals = "strict"')
    (tmp_path / "default.toml").write_text(text)
    registry = SpecRegistry.load_dir(tmp_path)
    assert registry.default.spec.intervals == "strict"
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    out = []
    for i in range(3000):
        old = i % 3 == 0
        denied = (i % 5 == 0) if old else (i % 50 == 0)  # 20% against 2%
        cohort = {"segment": "smb", "age_band": "65+" if old else "35-49", "region": "north"}
        out += feed(m, keys["gate"], action(i, subject=f"c-{i}", cohort=cohort,
                                            decision="denied" if denied else "allowed")).out
    fd = m.missions["m-1"].fairness["escalation_rate"][0]
    assert fd.strict and fd.proxy == "age_band"
    escalations = {e["evidence"]["cohort"]: e for e in out if e["schema"] == "missionwatch/escalation@1"}
    assert sorted(escalations) == ["age_band=35-49", "age_band=65+"]  # harm = "both": each against the rest
    ev = escalations["age_band=65+"]["evidence"]
    assert ev["verdict"] == "beyond" and ev["interval"][0] > 0.05 and ev["e_value"] >= 1 / ev["alpha"]
