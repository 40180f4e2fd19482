"""Judgement: what a mission decides from what its records did. A fairness gap escalates once
with its evidence; each cause escalates once, on the record that reveals it; a hard limit
pauses; a 'report' severity is shown, never issued; the review status follows the mission."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, Signer
from tests.conftest import action, feed, registration, review
from tests.core.conftest import gap_mission, of_kind, short_baseline_specs

OLD = {"segment": "smb", "tenure_band": "m4-12", "age_band": "65+", "region": "north"}


def test_fairness_gap_escalates_once_with_evidence(monitor: Monitor, keys: dict[str, Signer]) -> None:
    out = gap_mission(monitor, keys["gate"])
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


def test_a_hard_limit_acts_on_the_record_that_crosses_it_and_once(monitor: Monitor,
                                                                   keys: dict[str, Signer]) -> None:
    """cancellation_delay: above 168 hours over the whole mission, judged from 30 actions on."""
    gate = keys["gate"]
    feed(monitor, gate, registration())
    steps = [feed(monitor, gate, action(i, action_type="cancellation.handle", subject=f"c-{i}",
                                        delay_hours=200.0)) for i in range(60)]
    acting = [i for i, s in enumerate(steps) if s.out]
    assert acting == [29]  # the 30th action: min_samples reached, past the limit
    out = steps[29].out
    # the control signal is followed by a checkpoint of the mission's transparency log
    assert [o["schema"].split("/")[1] for o in out] == ["escalation@1", "control@1", "checkpoint@1", "strategy@1"]
    assert out[2]["tree_size"] == out[1]["seq"] + 1
    esc = out[0]
    assert (esc["code"], esc["detector"], esc["triggered_by"]) == ("hard_limit", "limit:cancellation_delay",
                                                                   "r-m-1-29")
    assert esc["evidence"] == {"metric": "cancellation_delay", "scope": "mission", "value": 200.0, "n": 30,
                               "above": 168.0, "below": None, "min_samples": 30}
    assert "the whole mission" in esc["reason"]
    assert out[3]["review_status"] == "paused" and out[3]["cohorts_affected"] == []


def test_a_mission_under_its_limit_is_never_paused(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    feed(monitor, gate, registration())
    for i in range(60):  # the mean reaches exactly 168 hours, which is not above 168
        feed(monitor, gate, action(i, action_type="cancellation.handle", subject=f"c-{i}",
                                   delay_hours=200.0 if i % 2 else 136.0))
    ms = monitor.missions["m-1"]
    assert ms.limits["cancellation_delay"][0].stats["mission"].mean == 168.0
    assert ms.state == "running" and not ms.escalations


# ------------------------------------------------------------ one per cause
@pytest.fixture
def short(tmp_path: Path, keys: dict[str, Signer], keyring: Keyring) -> Monitor:
    """A registered retention mission whose 10-action baseline used two templates."""
    m = Monitor(short_baseline_specs(tmp_path), signer=keys["monitor"], keyring=keyring)
    feed(m, keys["gate"], registration())
    for i in range(10):
        feed(m, keys["gate"], action(i, subject=f"c-{i}", cohort=OLD, template=f"renewal-v{i % 2}"))
    assert m.missions["m-1"].frozen
    return m


def test_a_new_template_escalates_once_per_value(short: Monitor, keys: dict[str, Signer]) -> None:
    templates = ["winback"] * 4 + ["renewal-v0", "winback", "last-call", "last-call", "winback"]
    steps = [feed(short, keys["gate"], action(10 + i, subject=f"c-{10 + i}", cohort=OLD, template=tpl))
             for i, tpl in enumerate(templates)]
    escalations = [(i, e["code"], e["evidence"]["value"]) for i, s in enumerate(steps) for e in of_kind(s.out,
                                                                                                       "escalation")]
    assert escalations == [(0, "new_template", "winback"), (6, "new_template", "last-call")]
    first = of_kind(steps[0].out, "escalation")[0]
    assert first["evidence"]["baseline_values"] == ["renewal-v0", "renewal-v1"]
    assert first["triggered_by"] == "r-m-1-10" and "winback" in first["reason"]


def test_a_report_severity_is_shown_never_issued(tmp_path: Path, keys: dict[str, Signer], keyring: Keyring) -> None:
    """An unregistered mission (spec 'default', new_template = "report"): the new template is
    one of the receipt's shift events, and no escalation."""
    m = Monitor(short_baseline_specs(tmp_path), signer=keys["monitor"], keyring=keyring)
    for i in range(10):
        feed(m, keys["gate"], action(i, template=f"renewal-v{i % 2}"))
    out = feed(m, keys["gate"], action(10, template="winback")).out
    assert [o["schema"] for o in out] == ["missionwatch/strategy@1"]  # the shift moved a verdict
    assert [(e["code"], e["value"]) for e in out[0]["shifts"]["events"]] == [("new_template", "winback")]
    assert not m.missions["m-1"].escalations and out[0]["open_escalations"] == []


def test_a_terminated_mission_escalates_nothing(short: Monitor, keys: dict[str, Signer]) -> None:
    feed(short, keys["reviewer"], review("terminate", t=3600))
    out = feed(short, keys["gate"], action(10, subject="c-10", cohort=OLD, template="winback", t=3700)).out
    assert not of_kind(out, "escalation") and not of_kind(out, "control")
    assert short.missions["m-1"].state == "terminated" and not short.missions["m-1"].escalations
    assert [e["value"] for e in of_kind(out, "strategy")[0]["shifts"]["events"]] == ["winback"]


# --------------------------------------------------------------- review status
def test_review_status_follows_the_mission(short: Monitor, keys: dict[str, Signer]) -> None:
    gate, reviewer = keys["gate"], keys["reviewer"]

    def status(step_out: list[dict[str, Any]]) -> str:
        return of_kind(step_out, "strategy")[-1]["review_status"]

    assert status(feed(short, reviewer, review("acknowledge", t=3000)).out) == "continue"  # registered, quiet
    out = feed(short, gate, action(10, subject="c-10", cohort=OLD, template="winback", t=3100)).out
    eid = of_kind(out, "escalation")[0]["escalation_id"]
    assert status(out) == "needs_review"  # an open escalation
    assert status(feed(short, reviewer, review("acknowledge", eid, rid="rv-2", t=3200)).out) == \
        "continue_with_monitoring"  # closed, but the mission has been escalated
    assert status(feed(short, reviewer, review("pause", rid="rv-3", t=3300)).out) == "paused"
    assert status(feed(short, reviewer, review("resume", "rv-3", rid="rv-4", t=3400)).out) == \
        "continue_with_monitoring"
    assert status(feed(short, reviewer, review("terminate", rid="rv-5", t=3500)).out) == "terminated"


def test_an_unregistered_mission_is_always_monitored(monitor: Monitor, keys: dict[str, Signer]) -> None:
    feed(monitor, keys["gate"], action(1))
    out = feed(monitor, keys["reviewer"], review("acknowledge")).out
    assert [o["review_status"] for o in out] == ["continue_with_monitoring"]


def test_an_unregistered_missions_open_escalation_needs_review(tmp_path: Path, keys: dict[str, Signer],
                                                               keyring: Keyring) -> None:
    """The default spec's mix detector (severity review): a baseline of two action types, then one."""
    m = Monitor(short_baseline_specs(tmp_path), signer=keys["monitor"], keyring=keyring)
    for i in range(10):
        feed(m, keys["gate"], action(i, action_type=("email.send", "offer.discount")[i % 2]))
    steps = [feed(m, keys["gate"], action(i, action_type="offer.discount")) for i in range(10, 100)]
    found = [(10 + i, e["code"], e["evidence"]["value"]) for i, s in enumerate(steps)
             for e in of_kind(s.out, "escalation")]
    assert found == [(70, "mix_shift", "offer.discount")]
    assert [r["review_status"] for r in of_kind(steps[60].out, "strategy")] == ["needs_review"]


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


def test_judge_is_pure(monitor: Monitor, keys: dict[str, Signer], monkeypatch: pytest.MonkeyPatch) -> None:
    """`judge` changes nothing: judged twice on every record of a mission with a real gap, it
    decides the same both times and leaves the mission's view as it was; only `settle` keeps
    its verdicts, so the gap still escalates exactly once."""
    import json

    from missionwatch.core import monitor as core_monitor
    from missionwatch.core.judge import judge
    from missionwatch.core.views import view_of

    def snapshot(ms: Any) -> str:
        return json.dumps(view_of(ms).receipt_body("x"), sort_keys=True, default=str)

    calls: list[int] = []
    impure: list[int] = []  # the monitor turns an exception into a rejection: note, assert later

    def twice(ms: Any, obs: Any, t: float) -> Any:
        before = snapshot(ms)
        first = judge(ms, obs, t)
        second = judge(ms, obs, t)
        if snapshot(ms) != before or (first.escalations, first.changed, first.problems) != (
                second.escalations, second.changed, second.problems):
            impure.append(len(calls))
        calls.append(len(first.escalations))
        return second

    monkeypatch.setattr(core_monitor, "judge", twice)
    out = gap_mission(monitor, keys["gate"])
    assert impure == []
    assert len(calls) >= 3000 and sum(calls) == 1
    assert [e["evidence"]["cohort"] for e in of_kind(out, "escalation")] == ["age_band=65+"]
