"""What a strategy receipt says the mission is doing, in the spec's words: `tactics` (the
fewest labelled tactics making up `[tactics] share` of the recent window, a new template
named), never empty once the mission has acted, even in a window with no actions; and
`cohort_concentration` (cohorts getting `[tactics] lift` times their share of actions), kept
apart from the flagged `cohorts_affected`."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest

from missionwatch.spec import SpecRegistry
from tests.conftest import stamp
from tests.core.conftest import fed_out

AGES = ["18-34", "35-49", "50-64", "65+"]


def mission(seed: int, n: int, *, heavy: str | None = None, late_template: str | None = None,
            quiet_days: int = 0) -> Iterator[dict[str, Any]]:
    """`n` actions to 2,000 subjects, a quarter in each age band; `heavy`: an age band whose
    subjects get three times the actions of the others; `late_template`: emails switch to it
    for the last third; `quiet_days`: then an outcome that many days later, and another as much later."""
    rng = random.Random(seed)
    mid = f"tac-{seed}"
    subjects = [{"segment": "smb", "tenure_band": "m4-12", "age_band": AGES[s % 4], "region": "north"}
                for s in range(2000)]
    weights = [3.0 if c["age_band"] == heavy else 1.0 for c in subjects]
    yield {"schema": "missionwatch/mission@1", "mission_id": mid, "spec": "retention", "objective": "o",
           "started_at": stamp(0)}
    t = 0
    for i in range(n):
        s = rng.choices(range(len(subjects)), weights)[0]
        kind = rng.choices(["email.send", "followup.schedule", "offer.discount"], [0.7, 0.2, 0.1])[0]
        template = late_template if late_template and kind == "email.send" and i > 2 * n // 3 else \
            rng.choice(["renewal-v1", "checkin-v1"])
        attrs: dict[str, Any] = {"template": template}
        if kind == "offer.discount":
            attrs = {"template": "offer-v1", "discount_pct": 10.0}
        t += rng.randint(1, 20)
        yield {"schema": "missionwatch/action@1", "receipt_id": f"r-{mid}-{i}", "mission_id": mid, "agent_id": "a",
               "action_type": kind, "decision": "allowed", "subject": {"id": f"s{s}", "cohort": subjects[s]},
               "attributes": attrs, "occurred_at": stamp(t)}
    for k in (1, 2) if quiet_days else ():  # the first closes the last window; the second's is empty
        yield {"schema": "missionwatch/outcome@1", "outcome_id": f"o-{mid}-{k}", "mission_id": mid,
               "subject": {"id": "s0"}, "outcome_type": "renewal", "value": 1,
               "occurred_at": stamp(t + k * quiet_days * 86_400)}


def receipts(registry: SpecRegistry, records: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return fed_out(registry, records, "strategy")


def test_tactics_speak_the_spec_labels_and_name_a_new_template(registry: SpecRegistry) -> None:
    out = receipts(registry, mission(1, 6000, late_template="urgent-last-chance", quiet_days=2))
    first, last = out[0], out[-1]
    assert sorted(first["tactics"]) == ["check-in emails", "renewal emails"], first["tactics"]
    assert last["window"]["actions"] == 0  # the quiet day's receipt
    # emails are 70% of actions; the last window's are urgent-last-chance
    assert last["tactics"][0] == "emails (urgent-last-chance)", last["tactics"]
    assert last["current_tactic_cluster"] == "email.send+urgent-last-chance"
    assert all(r["tactics"] and r["current_tactic_cluster"] for r in out)


@pytest.mark.parametrize("heavy", [None, "65+"])
def test_cohort_concentration_names_the_cohort_getting_more_than_its_share(registry: SpecRegistry,
                                                                            heavy: str | None) -> None:
    """A quarter of the subjects getting three times the actions: half the actions, a lift of
    about 2 (the concentrated cohort's subjects are also contacted more surely)."""
    last = receipts(registry, mission(2, 4000, heavy=heavy))[-1]
    conc = last["cohort_concentration"]
    if heavy is None:
        assert conc == [], conc
        return
    assert [c["cohort"] for c in conc] == ["age_band=65+"], conc
    c = conc[0]
    assert 0.4 <= c["actions_share"] <= 0.6 and 1.6 <= c["lift"] <= 2.4, c
    assert c["lift"] == pytest.approx(c["actions_share"] / c["subjects_share"], rel=1e-3)
    assert "age_band=65+" not in last["cohorts_affected"]
