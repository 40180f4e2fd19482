"""What tests/forking.py relies on: a monitor forked part way through a campaign (baseline
frozen, detectors watching) goes on as a monitor fed every record from the start, byte for
byte, and shares no state with the monitor it was forked from."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from missionwatch.monitor import Monitor
from missionwatch.sim import Campaign, generate
from tests.core.conftest import short_baseline_specs
from tests.forking import Fed, common_prefix, feed_forked


def campaign(plant: str | None) -> list[dict[str, Any]]:
    return list(generate(Campaign(mission_id="fu", seed=1, actions=800, change_at=0.5, followup_rise=plant)))


def test_a_forked_monitor_goes_on_as_one_fed_from_the_start(tmp_path: Path) -> None:
    registry = short_baseline_specs(tmp_path, actions=300)  # a baseline, and a receipt, every 300 actions
    trunk, branch = campaign(None), campaign("*")
    n = common_prefix(trunk, branch)
    assert sum(r["schema"] == "missionwatch/action@1" for r in trunk[:n]) >= 400 and n < len(branch)
    whole, forked = feed_forked(registry, trunk, {"*": branch})
    # the trunk went on after the branch was fed to its end: sharing state, either would differ
    for records, fed in ((trunk, whole), (branch, forked["*"])):
        fresh = Fed(Monitor(registry, signer=fed.monitor.signer, allow_unsigned=True))
        fresh.feed(records)
        assert fresh.out == fed.out and fresh.rejected == fed.rejected
        bodies = [m.view("fu").receipt_body("x") for m in (fresh.monitor, fed.monitor)]
        assert json.dumps(bodies[0]) == json.dumps(bodies[1])
    # after the fork, the branch's follow-ups rose and its detector alarmed; the trunk's did not
    own = [o for o in forked["*"].out if o not in whole.out]
    assert [o["code"] for o in own if o["schema"] == "missionwatch/escalation@1"] == ["followup_pressure"]
