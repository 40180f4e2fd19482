"""Each planted behaviour of `simulate` is found; unchanged fair campaigns stay silent."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from missionwatch.monitor import Rejection
from missionwatch.sim import Campaign, generate
from tests.forking import Fed, feed_forked

PLANTS = [
    ({"discount_gap": "age_band=65+"}, "fairness_:age_band=65+"),
    ({"new_template": "urgent-last-chance"}, "new_template:urgent-last-chance"),
    ({"followup_rise": "age_band=65+"}, "followup_pressure:age_band=65+"),
    ({"complaint_spike": 4.0, "change_at": 0.2}, "risk_elevated:"),
]
PLANTED_SEEDS = [1, 2]
Run = tuple[Counter[str], list[dict[str, Any]], list[Rejection]]


def campaign(seed: int, **plant: Any) -> list[dict[str, Any]]:
    return list(generate(Campaign(actions=12_000, subjects=3_000, seed=seed, **plant)))


def result(fed: Fed) -> Run:
    """The escalations' codes (with their cohort or value), every out record, every rejection."""
    codes: Counter[str] = Counter()
    for o in fed.out:
        if o["schema"] == "missionwatch/escalation@1":
            codes[f"{o['code']}:{o['evidence'].get('cohort', o['evidence'].get('value', ''))}"] += 1
    return codes, fed.out, fed.rejected


@pytest.fixture(scope="module")
def run(registry) -> Callable[..., Run]:
    """`run(seed, **plant)`: the campaign fed through a monitor. A seed's campaigns are fed
    when the first of them is asked for, together: the plants that begin part way through
    leave the campaign's start as it is without them, which is fed once (tests/forking.py)."""
    done: dict[tuple[int, str], Run] = {}

    def get(seed: int, **plant: Any) -> Run:
        if (seed, repr(plant)) not in done:
            planted = {repr(p): campaign(seed, **p) for p, _ in PLANTS} if seed in PLANTED_SEEDS else {}
            whole, forked = feed_forked(registry, campaign(seed), planted)
            done.update({(seed, key): result(fed) for key, fed in [*forked.items(), (repr({}), whole)]})
        return done[(seed, repr(plant))]

    return get


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_fair_campaign_stays_silent(run, seed: int) -> None:
    codes, out, rejected = run(seed)
    assert not rejected and not codes
    last = out[-1]
    assert last["state"] == "running" and not last["open_escalations"] and not last["cohorts_affected"]
    assert all(c["verdict"] != "beyond" for cells in last["fairness"].values() for c in cells.values())


@pytest.mark.parametrize(("plant", "expected"), PLANTS)
@pytest.mark.parametrize("seed", PLANTED_SEEDS)
def test_planted_behaviour_is_found(run, plant: dict[str, Any], expected: str, seed: int) -> None:
    codes, _, rejected = run(seed, **plant)
    assert not rejected
    found = [c for c in codes if c.startswith(expected.split(":")[0]) and expected.split(":")[1] in c]
    assert found, codes
    assert sum(codes.values()) <= 3, codes  # one escalation per episode, not a flood
