"""The core: every rejection code, duplicates, late outcomes, batches, reviews and pauses."""

from __future__ import annotations

from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from tests.conftest import action, feed, line, registration, review


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


@pytest.mark.parametrize("kind", ["strategy", "escalation", "control"])
def test_out_records_chain_per_mission(monitor: Monitor, keys: dict[str, Signer], kind: str) -> None:
    out = _gap_mission(monitor, keys["gate"], 2500)
    assert any(o["schema"] == f"missionwatch/{kind}@1" for o in out) or kind == "control"
    prev = None
    for seq, o in enumerate(out):
        assert o["seq"] == seq and o["prev_hash"] == prev
        prev = o["hash"]


