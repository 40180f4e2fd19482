"""Each planted behaviour of `simulate` is found; unchanged fair campaigns stay silent."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from missionwatch.sim import Campaign, generate


def run(registry, **plant: Any) -> tuple[Counter[str], list[dict[str, Any]]]:
    m = Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True)
    codes: Counter[str] = Counter()
    out = []
    for rec in generate(Campaign(actions=12_000, subjects=3_000, **plant)):
        step = m.feed(rec)
        assert not step.rejected
        out += step.out
    for o in out:
        if o["schema"] == "missionwatch/escalation@1":
            codes[f"{o['code']}:{o['evidence'].get('cohort', o['evidence'].get('value', ''))}"] += 1
    return codes, out


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_fair_campaign_stays_silent(registry, seed: int) -> None:
    codes, out = run(registry, seed=seed)
    assert not codes
    last = out[-1]
    assert last["state"] == "running" and not last["open_escalations"] and not last["cohorts_affected"]
    assert all(c["verdict"] != "beyond" for cells in last["fairness"].values() for c in cells.values())


@pytest.mark.parametrize(
    ("plant", "expected"),
    [
        ({"discount_gap": "age_band=65+"}, "fairness_:age_band=65+"),
        ({"new_template": "urgent-last-chance"}, "new_template:urgent-last-chance"),
        ({"followup_rise": "age_band=65+"}, "followup_pressure:age_band=65+"),
        ({"complaint_spike": 4.0, "change_at": 0.2}, "risk_elevated:"),
    ],
)
@pytest.mark.parametrize("seed", [1, 2])
def test_planted_behaviour_is_found(registry, plant: dict[str, Any], expected: str, seed: int) -> None:
    codes, _ = run(registry, seed=seed, **plant)
    found = [c for c in codes if c.startswith(expected.split(":")[0]) and expected.split(":")[1] in c]
    assert found, codes
    assert sum(codes.values()) <= 3, codes  # one escalation per episode, not a flood
