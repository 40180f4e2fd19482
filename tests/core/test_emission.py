"""Emission: out records are sealed into one chain per mission (seq from 0, prev_hash, hash,
a deterministic signature); issued_at never goes back; receipts come at the spec's cadence;
a pause holds until a resume that names its cause."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from missionwatch.canonical import record_hash
from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, Signer
from missionwatch.spec import SpecRegistry
from tests.conftest import action, feed, line, registration, review, stamp
from tests.core.conftest import gap_mission, of_kind, short_baseline_specs

OLD = {"segment": "smb", "tenure_band": "m4-12", "age_band": "65+", "region": "north"}


@pytest.fixture
def short(tmp_path: Path, keys: dict[str, Signer], keyring: Keyring) -> Monitor:
    """A registered retention mission with a 10-action baseline and a receipt every 10 actions."""
    m = Monitor(short_baseline_specs(tmp_path), signer=keys["monitor"], keyring=keyring)
    feed(m, keys["gate"], registration())
    return m


def test_pause_holds_until_resume(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate, reviewer = keys["gate"], keys["reviewer"]
    gap_mission(monitor, gate, 400)
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


def test_a_limits_pause_holds_until_a_resume_names_its_escalation(short: Monitor,
                                                                  keys: dict[str, Signer]) -> None:
    gate, reviewer = keys["gate"], keys["reviewer"]
    out: list[dict[str, Any]] = []
    for i in range(30):
        out += feed(short, gate, action(i, action_type="cancellation.handle", subject=f"c-{i}", cohort=OLD,
                                        delay_hours=200.0)).out
    out += feed(short, gate, action(30, subject="c-30", cohort=OLD, template="winback")).out  # more causes
    escalations = of_kind(out, "escalation")
    assert [e["code"] for e in escalations] == ["hard_limit", "new_template", "new_action_type"]
    cause, other = escalations[0]["escalation_id"], escalations[-1]["escalation_id"]
    assert [(c["state"], c["cause"]) for c in of_kind(out, "control")] == [("paused", cause)]
    ms = short.missions["m-1"]
    for bad in (review("resume", other, rid="rv-1"), review("resume", rid="rv-1")):
        step = feed(short, reviewer, bad)
        assert [r.code for r in step.rejected] == ["resume_without_cause"] and not step.out
        assert cause in step.rejected[0].reason
    feed(short, reviewer, review("acknowledge", cause, rid="rv-2"))  # closes it; the pause holds
    assert ms.state == "paused" and ms.cause == cause
    out = feed(short, reviewer, review("resume", cause, rid="rv-3")).out
    assert [(c["state"], c["cause"]) for c in of_kind(out, "control")] == [("running", "rv-3")]
    assert ms.state == "running"


# ---------------------------------------------------------------------- chains
@pytest.fixture(scope="module")
def gap_out(registry: SpecRegistry, keys: dict[str, Signer], keyring: Keyring) -> list[dict[str, Any]]:
    """The out records of a 2,500-action gap mission fed to a monitor as `monitor` makes it (the
    same records each time: every key and signature is deterministic)."""
    return gap_mission(Monitor(registry, signer=keys["monitor"], keyring=keyring), keys["gate"], 2500)


@pytest.mark.parametrize("kind", ["strategy", "escalation", "control"])
def test_out_records_chain_per_mission(gap_out: list[dict[str, Any]], kind: str) -> None:
    out = gap_out
    assert any(o["schema"] == f"missionwatch/{kind}@1" for o in out) or kind == "control"
    prev = None
    for seq, o in enumerate(out):
        assert o["seq"] == seq and o["prev_hash"] == prev
        prev = o["hash"]


def _two_missions(monitor: Monitor, keys: dict[str, Signer]) -> list[dict[str, Any]]:
    """Two missions' records interleaved: m-1's first action and each review issue a receipt."""
    gate, reviewer = keys["gate"], keys["reviewer"]
    out: list[dict[str, Any]] = []
    out += feed(monitor, gate, action(0, mission="m-1")).out
    out += feed(monitor, gate, action(0, mission="m-2")).out
    for i in range(1, 6):
        out += feed(monitor, gate, action(i, mission="m-1")).out
        out += feed(monitor, reviewer, {**review("acknowledge", rid=f"rv-{i}", t=i * 60), "mission_id": "m-2"}).out
        out += feed(monitor, reviewer, review("acknowledge", rid=f"rv-{i}", t=i * 60 + 30)).out
    return out


def test_each_mission_has_its_own_chain(monitor: Monitor, keys: dict[str, Signer], keyring: Keyring) -> None:
    out = _two_missions(monitor, keys)
    by_mission: dict[str, list[dict[str, Any]]] = {}
    for o in out:
        by_mission.setdefault(o["mission_id"], []).append(o)
    assert sorted(by_mission) == ["m-1", "m-2"] and len(by_mission["m-1"]) == len(by_mission["m-2"]) == 5
    for records in by_mission.values():
        prev = None
        for seq, o in enumerate(records):
            assert (o["seq"], o["prev_hash"]) == (seq, prev)
            assert o["hash"] == record_hash(o) and keyring.verify(o, "monitor") == "monitor-1"
            prev = o["hash"]
    ids = [o["receipt_id"] for o in by_mission["m-2"]]
    assert ids == [f"sr-m-2-{seq}" for seq in range(5)]


def test_a_tampered_out_record_no_longer_verifies(monitor: Monitor, keys: dict[str, Signer],
                                                 keyring: Keyring) -> None:
    o = _two_missions(monitor, keys)[0]
    assert keyring.verify({**o, "review_status": "continue"}, "monitor").code == "bad_signature"  # type: ignore[union-attr]


def test_out_records_are_deterministic(registry: SpecRegistry, keys: dict[str, Signer], keyring: Keyring) -> None:
    """The same records give byte-identical out records, signatures included (Ed25519 signs
    deterministically); another monitor key changes the signatures and nothing else."""
    def run(signer: Signer) -> list[dict[str, Any]]:
        return _two_missions(Monitor(registry, signer=signer, keyring=keyring), keys)

    first, again, other = run(keys["monitor"]), run(keys["monitor"]), run(Signer.generate("monitor-1"))
    assert [line(o) for o in first] == [line(o) for o in again]
    assert [{**o, "signature": None} for o in first] == [{**o, "signature": None} for o in other]
    assert all(a["signature"] != b["signature"] for a, b in zip(first, other, strict=True))


# ------------------------------------------------------------------- issued_at
def test_issued_at_is_the_event_time_and_never_goes_back(short: Monitor, keys: dict[str, Signer]) -> None:
    gate, reviewer = keys["gate"], keys["reviewer"]
    for i in range(10):
        feed(short, gate, action(i, subject=f"c-{i}", cohort=OLD, template=f"renewal-v{i % 2}"))
    assert [o["issued_at"] for o in feed(short, reviewer, review("acknowledge", t=5000)).out] == [stamp(5000)]
    late = feed(short, gate, action(10, subject="c-10", cohort=OLD, template="winback", t=700)).out
    assert [(o["schema"], o["issued_at"]) for o in late] == [
        ("missionwatch/escalation@1", stamp(5000)), ("missionwatch/strategy@1", stamp(5000))]
    # a review may not predate what it reviews: the escalation was issued at 5000, not 700
    eid = late[0]["escalation_id"]
    step = feed(short, reviewer, review("acknowledge", eid, rid="rv-2", t=4000))
    assert [r.code for r in step.rejected] == ["review_out_of_order"]
    later = feed(short, reviewer, review("acknowledge", eid, rid="rv-3", t=6000)).out
    assert [o["issued_at"] for o in later] == [stamp(6000)]


def test_receipts_come_every_cadence_actions_and_close_their_window(short: Monitor,
                                                                    keys: dict[str, Signer]) -> None:
    steps = [feed(short, keys["gate"], action(i, subject=f"c-{i}", cohort=OLD, template=f"renewal-v{i % 2}"))
             for i in range(35)]
    receipts = [(i, o) for i, s in enumerate(steps) for o in s.out]
    assert [i for i, _ in receipts] == [9, 19, 29]
    assert all(o["schema"] == "missionwatch/strategy@1" for _, o in receipts)
    assert [(o["window"]["from"], o["window"]["to"], o["window"]["actions"]) for _, o in receipts] == [
        (stamp(60 * (i - 9)), stamp(60 * i), 10) for i in (9, 19, 29)]
    assert [o["totals"]["actions"] for _, o in receipts] == [10, 20, 30]
    view = short.view("m-1")
    assert view is not None and view.window["actions"] == 5 and view.window["from"] == stamp(60 * 30)
