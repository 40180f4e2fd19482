"""MissionView: one picture of a mission; taking it changes nothing the monitor decides."""

from __future__ import annotations

import dataclasses

import pytest

from missionwatch.detect.fairness import any_beyond
from missionwatch.monitor import Monitor
from tests.conftest import action, feed, review
from tests.hostile.test_core import gap_campaign, line, registration


def test_looking_at_a_mission_after_every_record_changes_no_out_record(registry, keys, keyring) -> None:
    gate = keys["gate"]
    lines = [line(gate.sign(registration())), *gap_campaign(gate, 2600)]
    watched = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    alone = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    out_watched, out_alone = [], []
    for x in lines:
        out_watched += watched.feed(x).out
        view = watched.view("m-1")
        assert view is not None and view.mission_id == "m-1"
        out_alone += alone.feed(x).out
    assert out_watched == out_alone
    assert any(o["schema"] == "missionwatch/escalation@1" for o in out_alone)


def test_the_receipt_is_the_view_sealed(registry, keys, keyring) -> None:
    """Right after a receipt is issued, the view shows what the receipt says."""
    gate = keys["gate"]
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    compared = 0
    for x in [line(gate.sign(registration())), *gap_campaign(gate, 2100)]:
        out = m.feed(x).out
        if not out or out[-1]["schema"] != "missionwatch/strategy@1":
            continue
        receipt, view = out[-1], m.view("m-1")
        assert view is not None and dataclasses.is_dataclass(view)
        body = view.receipt_body(receipt["receipt_id"])
        for key in ("fairness", "risk_signals", "totals", "cohorts_affected", "review_status", "state",
                    "open_escalations", "fairness_fdr", "shifts"):
            assert body[key] == receipt[key], key
        assert view.status() == {"mission_id": "m-1", "state": "running", "cause": None, "seq": receipt["seq"]}
        compared += 1
    assert compared >= 2
    view = m.view("m-1")
    assert view is not None and view.fairness["discount_rate"]["age_band=65+"]["verdict"] == "beyond"
    assert m.view("no-such") is None


def test_the_status_answer_follows_the_chain(monitor: Monitor, keys) -> None:
    feed(monitor, keys["gate"], action(1))
    view = monitor.view("m-1")
    assert view is not None and view.status() == {"mission_id": "m-1", "state": "running", "cause": None,
                                                  "seq": None}  # nothing issued yet
    feed(monitor, keys["reviewer"], review("pause"))  # a control record (seq 0), then a receipt (seq 1)
    view = monitor.view("m-1")
    assert view is not None and view.status() == {"mission_id": "m-1", "state": "paused", "cause": "rv-1",
                                                  "seq": 1}
    feed(monitor, keys["reviewer"], review("resume", "rv-1", rid="rv-2"))
    after = monitor.view("m-1")
    assert after is not None and after.status() == {"mission_id": "m-1", "state": "running", "cause": "rv-2",
                                                    "seq": 3}
    assert view.state == "paused"  # a view taken earlier is a snapshot: it does not follow the mission
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.state = "paused"  # type: ignore[misc]


def test_a_summary_shows_what_the_view_shows(registry, keys, keyring) -> None:
    """The `missions` row's fields, taken cheaply, equal the view's after every record of a
    campaign that escalates, pauses and is resumed; `any_beyond` says what the verdicts say."""
    gate = keys["gate"]
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    lines = [line(gate.sign(registration())), *gap_campaign(gate, 2600)]
    statuses, beyond = set(), 0
    for i, x in enumerate(lines):
        for esc in [o for o in m.feed(x).out if o["schema"] == "missionwatch/escalation@1"]:
            feed(m, keys["reviewer"], review("resume", esc["escalation_id"], rid=f"rv-{i}", t=10_000 + i))
        view, summary = m.view("m-1"), m.summary("m-1")
        assert view is not None and summary is not None
        assert dataclasses.asdict(summary) == {f.name: getattr(view, f.name) for f in dataclasses.fields(summary)}
        statuses.add(summary.review_status)
        for fd in (fd for fds in m.missions["m-1"].fairness.values() for fd in fds):
            said = any(v.verdict == "beyond" for v in fd.verdicts.values())
            assert any_beyond(fd) == said
            beyond += said
    assert m.summary("nobody") is None and beyond > 0
    assert {"continue", "needs_review"} <= statuses, statuses
