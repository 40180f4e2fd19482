"""The console's JSON answers over an offline source: the overview, a mission, the queue."""

from __future__ import annotations

import json
from typing import Any

from missionwatch.console import api
from missionwatch.console.history import MissionHistory
from missionwatch.console.review import make_review
from missionwatch.records import SCHEMA_STRATEGY
from tests.console.conftest import source


def test_the_overview_names_each_mission_state_and_what_waits(offline: dict[str, Any]) -> None:
    src, _ = source(offline)
    body = api.missions(src)
    json.dumps(body)  # JSON-ready
    rows = {r["mission_id"]: r for r in body["missions"]}
    assert rows["m-gap"]["state"] == "paused" and rows["m-gap"]["open_escalations"] == 1
    assert rows["m-fair"]["state"] == "running" and rows["m-fair"]["open_escalations"] == 0
    assert body["counts"] == {"running": 1, "needs_review": 0, "paused": 1, "terminated": 0}
    assert rows["m-gap"]["actions"] == 3000 and rows["m-fair"]["actions"] == 1500
    assert rows["m-gap"]["last_receipt"]["receipt_id"] == src.history("m-gap").last_receipt["receipt_id"]  # type: ignore[union-attr]
    assert rows["m-fair"]["actions_per_minute"] == 0.0  # its actions all came before its latest receipts
    assert "age_band=65+" in rows["m-gap"]["cohorts_affected"]


def test_a_mission_page_has_its_view_history_and_escalation_evidence(offline: dict[str, Any]) -> None:
    src, _ = source(offline)
    page = api.mission(src, "m-gap")
    assert page is not None
    json.dumps(page)
    v = page["view"]
    assert v["mission_id"] == "m-gap" and v["console_state"] == "paused" and v["objective"]
    assert v["fairness"]["discount_rate"]["age_band=65+"]["verdict"] == "beyond"
    (esc,) = page["escalations"]
    assert esc["open"] and esc["severity"] == "pause" and esc["evidence"]["cohort"] == "age_band=65+"
    assert esc["triggered_by"].startswith("r-") and esc["reason"].startswith("Discount rate")
    assert len(page["receipts"]) >= 2 and page["controls"][-1]["state"] == "paused"
    assert api.mission(src, "m-none") is None and api.escalations(src, "m-none") is None
    assert api.receipts(src, "m-none") is None and api.reviews(src, "m-none") is None


def test_the_queue_holds_open_escalations_until_a_review_closes_them(offline: dict[str, Any]) -> None:
    src, _ = source(offline)
    q = api.queue(src)
    assert q["open"] == 1 and [g["mission_id"] for g in q["groups"]] == ["m-gap"]
    esc = q["groups"][0]["escalations"][0]
    rec = make_review(offline["reviewer"], mission_id="m-gap", decision="resume", reviewer="user:lee.risk",
                      occurred_at="2026-06-01T00:00:00Z", escalation_id=esc["escalation_id"], note="explained")
    assert not src.process(json.dumps(rec)).rejected
    assert api.queue(src) == {"groups": [], "open": 0}
    (closed,) = api.escalations(src, "m-gap") or []
    assert not closed["open"] and [r["review_id"] for r in closed["reviews"]] == [rec["review_id"]]
    assert api.missions(src)["counts"]["running"] == 2
    assert [r["note"] for r in api.reviews(src, "m-gap") or []] == ["explained"]


def test_actions_per_minute_is_the_pace_over_the_latest_receipts() -> None:
    h = MissionHistory()
    for i, (t, n) in enumerate((("2026-05-01T00:00:00Z", 100), ("2026-05-01T00:05:00Z", 250),
                                ("2026-05-01T00:10:00Z", 400))):
        h.take({"schema": SCHEMA_STRATEGY, "mission_id": "m", "receipt_id": f"sr-{i}", "issued_at": t,
                "totals": {"actions": n}})
    assert api._rate(h) == 30.0
    assert api._rate(MissionHistory()) is None
