"""The console's memory of a mission: receipt digests, escalations, controls, reviews and the
fate of every review, fed the same steps as the monitor."""

from __future__ import annotations

import json
from typing import Any, cast

from missionwatch.console.history import (
    RECEIPTS_KEPT,
    REVIEWS_KEPT,
    History,
    MissionHistory,
    Receipts,
    digest,
    review_outcomes,
)
from missionwatch.console.review import make_review
from missionwatch.core.step import Accepted, Rejection, Step
from missionwatch.records import SCHEMA_BATCH, SCHEMA_STRATEGY
from missionwatch.signing import load_private_key
from tests.console.conftest import source


def _review(offline: dict[str, Any], rid: str, decision: str, esc: str | None, **kw: Any) -> bytes:
    rec = make_review(offline["reviewer"], mission_id="m-gap", decision=decision, reviewer="user:lee.risk",
                      occurred_at="2026-06-01T00:00:00Z", escalation_id=esc, review_id=rid, **kw)
    return json.dumps(rec).encode()


def test_history_keeps_what_the_monitor_issued(offline: dict[str, Any]) -> None:
    src, out = source(offline)
    h = src.history("m-gap")
    assert h is not None
    receipts = [r for r in out if r["mission_id"] == "m-gap" and r["schema"] == SCHEMA_STRATEGY]
    assert [d["receipt_id"] for d in h.receipts] == [r["receipt_id"] for r in receipts]
    assert h.last_receipt == receipts[-1]
    escalations = [r["escalation_id"] for r in out if r["mission_id"] == "m-gap" and "escalation_id" in r
                   and r["schema"].startswith("missionwatch/escalation")]
    assert list(h.escalations) == escalations and escalations
    assert [c["state"] for c in h.controls] == ["paused"]
    # a digest keeps each cohort's estimate, interval and verdict as the receipt had them
    last = h.receipts[-1]
    cohort = receipts[-1]["fairness"]["discount_rate"]["age_band=65+"]
    assert last["fairness"]["discount_rate"]["age_band=65+"] == {
        k: cohort.get(k) for k in ("estimate", "interval", "gap", "verdict")}
    assert last["fairness"]["discount_rate"]["age_band=65+"]["verdict"] == "beyond"
    kinds = [e["kind"] for _, e in src.feed.after(0)]
    assert kinds.count("escalation") == 1 and kinds.count("control") == 1
    assert kinds.count("receipt") == len([r for r in out if r["schema"] == SCHEMA_STRATEGY])


def test_an_accepted_review_is_kept_and_a_refused_one_is_answered_with_its_code(offline: dict[str, Any]) -> None:
    src, _ = source(offline)
    h = src.history("m-gap")
    assert h is not None
    cause = next(iter(h.escalations))
    refused = src.process(_review(offline, "rv-bad", "resume", "esc-nope"))
    assert refused.rejected and not refused.out
    assert src.review_outcome("rv-bad") == {
        "mission_id": "m-gap", "review_id": "rv-bad", "outcome": "refused", "code": "unknown_escalation",
        "reason": refused.rejected[0].reason}
    assert list(h.reviews) == []  # a refused review is no part of the history
    step = src.process(_review(offline, "rv-ok", "resume", cause, note="explained"))
    assert not step.rejected
    assert src.review_outcome("rv-ok") == {"mission_id": "m-gap", "review_id": "rv-ok", "outcome": "accepted"}
    (kept,) = h.reviews
    assert kept["review_id"] == "rv-ok" and kept["note"] == "explained" and kept["key_id"] == "reviewer-1"
    assert [c["state"] for c in h.controls] == ["paused", "running"]
    again = src.process(_review(offline, "rv-ok", "resume", cause, note="explained"))  # a duplicate
    assert len(h.reviews) == 1 and not again.out
    kinds = [e["kind"] for _, e in src.feed.after(0)]
    assert "review_refused" in kinds and kinds.count("review") == 1


def test_a_review_refused_inside_a_batch_is_found_by_its_item(offline: dict[str, Any]) -> None:
    """A review in a batch signed by a gate key is refused (wrong role): the item names it."""
    src, _ = source(offline)
    gate = load_private_key(offline["gap"]["gate-1"])
    review = json.loads(_review(offline, "rv-in-batch", "acknowledge", None))
    review.pop("signature")
    envelope = gate.sign({"schema": SCHEMA_BATCH, "batch_id": "b-1", "items": [review]})
    src.process(json.dumps(envelope).encode())
    fate = src.review_outcome("rv-in-batch")
    assert fate is not None and fate["outcome"] == "refused" and fate["code"] == "wrong_role"


def test_review_outcomes_read_hostile_messages_without_failing() -> None:
    rejection = Rejection("bad_json", "not JSON")
    for message in (b"\xff\xfe missionwatch/review@1", b'{"schema": "missionwatch/review@1"',
                    b'{"schema": "missionwatch/review@1", "review_id": 7}',
                    b'{"schema": "missionwatch/batch@1", "items": "missionwatch/review@1"}',
                    b'[1, 2, "missionwatch/review@1"]', b'"missionwatch/review@1"'):
        assert review_outcomes(Step(rejected=[rejection]), message) == []
    far = Rejection("wrong_role", "no", item=99)  # an item index beyond the batch names nothing
    assert review_outcomes(Step(rejected=[far]), b'{"items": [{"schema": "missionwatch/review@1", '
                           b'"review_id": "r"}]}') == []


def test_a_mission_history_is_bounded() -> None:
    h = MissionHistory()
    for i in range(RECEIPTS_KEPT + 50):
        h.take({"schema": SCHEMA_STRATEGY, "mission_id": "m", "receipt_id": f"sr-{i}", "seq": i,
                "issued_at": "2026-05-01T00:00:00Z", "fairness": {}, "risk_signals": {}, "totals": {}})
    assert len(h.receipts) == RECEIPTS_KEPT and h.receipts[0]["receipt_id"] == "sr-50"
    hist = History()
    for i in range(REVIEWS_KEPT + 5):
        rec = {"mission_id": "m", "review_id": f"r-{i}"}
        hist.take(Step(accepted=[Accepted("review", rec, cast(Any, None), "h", "k", None, False)]), b"")
    kept = hist.get("m")
    assert kept is not None and len(kept.reviews) == REVIEWS_KEPT and kept.reviews[0]["review_id"] == "r-5"
    assert len(hist.outcomes) == REVIEWS_KEPT + 5  # outcomes are bounded apart (OUTCOMES_KEPT)


def test_the_last_receipt_comes_back_as_its_json_reads() -> None:
    """Kept packed, read whole as the console serves it: floats to the last bit, key order,
    Unicode (a lone surrogate too), huge numbers; tuples as lists."""
    rec = {"schema": SCHEMA_STRATEGY, "mission_id": "m", "receipt_id": "sr-1", "issued_at": "2026-05-01T00:00:00Z",
           "fairness": {"d": {"age_band=65+": {"interval": (-0.1, 0.30000000000000004), "n": 3}}},
           "cohorts_affected": ("age_band=65+",), "note": "ünïcode ✓ \ud800", "big": 10**40, "tiny": 5e-324,
           "totals": {"actions": 10}}
    h = MissionHistory()
    assert h.last_receipt is None and h.receipts == () and not h.escalations and h.controls == ()
    h.take(rec)
    again = h.last_receipt
    assert again == json.loads(json.dumps(rec)) and list(again) == list(rec) and again is not rec
    assert again["fairness"]["d"]["age_band=65+"]["interval"] == [-0.1, 0.30000000000000004]
    assert h == h and h != MissionHistory()


def test_packed_digests_read_as_a_list_of_them_would() -> None:
    """Kept packed, read as the digests a bounded list would hold (as their JSON reads): every
    index and slice, copies that change nothing kept, and heads equal to the digests' fields."""
    h, kept = MissionHistory(), []
    for i in range(RECEIPTS_KEPT + 7):
        rec = {"schema": SCHEMA_STRATEGY, "mission_id": "m", "receipt_id": f"sr-{i}", "seq": i,
               "issued_at": f"2026-05-01T00:{i // 60 % 60:02d}:{i % 60:02d}.5Z", "review_status": "continue",
               "tactics": ["ä", str(i)], "totals": {"actions": i * 3 + 0.1 if i % 2 else i},
               "fairness": {"x": {"c=1": {"estimate": i / 7, "interval": [None, 1e308 * (i % 3)]}}}}
        h.take(rec)
        kept = [*kept, json.loads(json.dumps(digest(rec)))][-RECEIPTS_KEPT:]
    got = h.receipts
    assert isinstance(got, Receipts) and len(got) == RECEIPTS_KEPT and list(got) == kept
    for i in (0, 1, -1, -2, RECEIPTS_KEPT - 1, -RECEIPTS_KEPT):
        assert got[i] == kept[i]
    for sl in (slice(-10, None), slice(None, 3), slice(5, 50, 7), slice(None, None, -1), slice(900, None)):
        assert got[sl] == kept[sl]
    for bad in (RECEIPTS_KEPT, -RECEIPTS_KEPT - 1):
        try:
            got[bad]
        except IndexError:
            pass
        else:
            raise AssertionError(f"index {bad} read something")
    got[-1]["tactics"].append("changed")
    assert got[-1] == kept[-1]
    fields = ("receipt_id", "seq", "issued_at", "review_status", "tactics", "actions")
    for n in (1, 10, RECEIPTS_KEPT + 1):
        assert h.latest(n) == [{k: d[k] for k in fields} for d in kept[-n:]]
    assert h.latest(0) == [] and MissionHistory().latest(10) == []
    assert h.last_receipt is not None and h.last_receipt["receipt_id"] == f"sr-{RECEIPTS_KEPT + 6}"


def test_a_history_packs_with_one_dictionary_and_survives_a_pickle() -> None:
    """The missions of a History share its packer; a history pickled (a checkpoint) reads the same."""
    import pickle

    hist = History()
    for mid in ("m-1", "m-2"):
        for i in range(3):
            hist.take(Step(out=[{"schema": SCHEMA_STRATEGY, "mission_id": mid, "receipt_id": f"{mid}-{i}", "seq": i,
                                 "issued_at": "2026-05-01T00:00:00Z", "totals": {"actions": i}}]), b"")
    one, two = hist.get("m-1"), hist.get("m-2")
    assert one is not None and two is not None and one._packer is two._packer is hist.packer
    again = pickle.loads(pickle.dumps(hist))
    assert again.missions == hist.missions and [d["receipt_id"] for d in again.missions["m-2"].receipts] == [
        "m-2-0", "m-2-1", "m-2-2"]
