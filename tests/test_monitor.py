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
