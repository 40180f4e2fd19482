"""Who may review what: scopes by mission, spec and owner; the reviewer named must be the key's
holder; a spec may ask two distinct reviewers to resume a mission an escalation paused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from missionwatch.console.review import make_review
from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, KeyScope, Signer, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.stream.demo import write_demo_specs
from tests.conftest import SPECS


@pytest.fixture(scope="module")
def paused(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A campaign whose discount gap pauses it, under a retention spec asking two reviewers to resume."""
    root = tmp_path_factory.mktemp("two")
    specs = write_demo_specs(SPECS, root / "specs")
    text = (specs / "retention.toml").read_text()
    (specs / "retention.toml").write_text(text.replace("[spec]\n", "[spec]\nresume_reviewers = 2\n", 1))
    c = write_campaign(Campaign(mission_id="m-two", seed=7, actions=3000, subjects=800,
                                discount_gap="age_band=65+", discount_gap_factor=0.3), root / "c", seed_keys=True)
    ring = Keyring.load(c["keyring"])
    extra = {"kim": Signer.generate("reviewer-kim"), "ops": Signer.generate("reviewer-ops"),
             "other": Signer.generate("reviewer-other")}
    ring.add("reviewer-kim", extra["kim"].public_key, "reviewer", KeyScope(reviewer="user:kim"))
    ring.add("reviewer-ops", extra["ops"].public_key, "reviewer",
             KeyScope(specs=("retention",), owners=("risk:*",), reviewer="user:ops"))
    ring.add("reviewer-other", extra["other"].public_key, "reviewer",
             KeyScope(owners=("growth:*",), reviewer="user:other"))
    return {"specs": specs, "c": c, "ring": ring, "lee": load_private_key(c["reviewer-1"]), **extra,
            "lines": [ln for ln in c["receipts"].read_bytes().splitlines() if ln.strip()]}


def _fed(paused: dict[str, Any]) -> tuple[Monitor, str]:
    m = Monitor(SpecRegistry.load_dir(paused["specs"]), signer=load_private_key(paused["c"]["monitor-1"]),
                keyring=paused["ring"])
    for ln in paused["lines"]:
        m.feed(ln)
    ms = m.missions["m-two"]
    assert ms.state == "paused" and ms.cause in ms.escalations
    return m, str(ms.cause)


def _review(signer: Signer, reviewer: str, rid: str, esc: str | None, decision: str = "resume") -> bytes:
    return json.dumps(make_review(signer, mission_id="m-two", decision=decision, reviewer=reviewer,
                                  occurred_at="2026-06-01T00:00:00Z", escalation_id=esc, review_id=rid)).encode()


def test_two_distinct_reviewers_resume_a_mission_an_escalation_paused(paused: dict[str, Any]) -> None:
    m, cause = _fed(paused)
    first = m.feed(_review(paused["lee"], "user:lee.risk", "rv-1", cause))
    assert not first.rejected
    assert [r["schema"] for r in first.out] == ["missionwatch/strategy@1"]  # an approval: no control
    assert first.out[0]["state"] == "paused" and first.out[0]["open_escalations"] == [cause]
    assert first.out[0]["resume_approvals"] == {"escalation_id": cause, "approvals": ["user:lee.risk"], "needed": 2}
    again = m.feed(_review(paused["lee"], "user:lee.risk", "rv-2", cause))
    assert [r.code for r in again.rejected] == ["second_reviewer_required"]
    assert "already approved" in again.rejected[0].reason and "1 of 2" in again.rejected[0].reason
    renamed = m.feed(_review(paused["lee"], "user:someone", "rv-3", cause))  # the same key, another name
    assert [r.code for r in renamed.rejected] == ["second_reviewer_required"]
    assert m.missions["m-two"].state == "paused"
    second = m.feed(_review(paused["kim"], "user:kim", "rv-4", cause))
    assert not second.rejected
    control = next(r for r in second.out if r["schema"] == "missionwatch/control@1")
    assert control["state"] == "running" and control["cause"] == "rv-4"
    receipt = second.out[-1]
    assert "resume_approvals" not in receipt and receipt["open_escalations"] == []


def test_a_mission_a_review_paused_needs_one_resume(paused: dict[str, Any]) -> None:
    m, cause = _fed(paused)
    assert not m.feed(_review(paused["lee"], "user:lee.risk", "rv-1", cause)).rejected
    assert not m.feed(_review(paused["kim"], "user:kim", "rv-2", cause)).rejected  # released
    assert not m.feed(_review(paused["kim"], "user:kim", "rv-3", None, "pause")).rejected
    ms = m.missions["m-two"]
    assert ms.state == "paused" and ms.cause == "rv-3"
    step = m.feed(_review(paused["lee"], "user:lee.risk", "rv-4", "rv-3"))
    assert not step.rejected and ms.state == "running"


def test_scopes_by_spec_and_owner_and_the_key_holder(paused: dict[str, Any]) -> None:
    m, cause = _fed(paused)
    named = m.feed(_review(paused["kim"], "user:lee.risk", "rv-1", cause))
    assert [r.code for r in named.rejected] == ["reviewer_not_key_holder"]
    assert "belongs to reviewer 'user:kim'" in named.rejected[0].reason
    other = m.feed(_review(paused["other"], "user:other", "rv-2", cause, "acknowledge"))
    assert [r.code for r in other.rejected] == ["reviewer_out_of_scope"]
    assert "owned by growth:*, not 'risk:retention-team'" in other.rejected[0].reason
    ops = m.feed(_review(paused["ops"], "user:ops", "rv-3", cause))  # its spec and owner patterns match
    assert not ops.rejected
    assert m.missions["m-two"].resume_approvals[cause] == [("user:ops", "reviewer-ops")]


def test_scope_fields_round_trip_through_the_keyring_file(paused: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "keyring.json"
    path.write_text(json.dumps(paused["ring"].to_json()))
    back = Keyring.load(path)
    assert back.scope_of("reviewer-ops") == KeyScope(specs=("retention",), owners=("risk:*",), reviewer="user:ops")
    bad = paused["ring"].to_json()
    bad["keys"][-1]["owners"] = "risk:*"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="owners must be a list"):
        Keyring.load(path)


def test_receipts_and_explain_say_who_reviewed_when_and_why(paused: dict[str, Any]) -> None:
    from io import StringIO

    from rich.console import Console

    from missionwatch.render import render_events

    m, cause = _fed(paused)
    out = m.feed(_review(paused["lee"], "user:lee.risk", "rv-1", cause)).out
    out += m.feed(json.dumps(make_review(paused["kim"], mission_id="m-two", decision="resume", reviewer="user:kim",
                                         occurred_at="2026-06-01T00:00:00Z", escalation_id=cause, review_id="rv-2",
                                         note="65+ offers fixed")).encode()).out
    assert out[-1]["last_review"] == {"review_id": "rv-2", "reviewer": "user:kim", "decision": "resume",
                                      "escalation_id": cause, "note": "65+ offers fixed",
                                      "occurred_at": "2026-06-01T00:00:00Z"}
    text = StringIO()
    render_events(out, Console(file=text, width=200, no_color=True))
    lines = text.getvalue().splitlines()
    assert f"REVIEW m-two: resume of {cause} by user:lee.risk at 2026-06-01T00:00:00Z" in lines
    assert f'REVIEW m-two: resume of {cause} by user:kim at 2026-06-01T00:00:00Z: "65+ offers fixed"' in lines
    assert any(ln.strip().startswith("last review: resume") and "user:kim" in ln for ln in lines)
