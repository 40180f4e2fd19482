"""Clustered traffic through the whole monitor: contacts of one to three actions that share
the contact's template (a generator written apart from the project's simulator). A fair,
unchanged mission of such contacts used to escalate a template mix shift in every run; the
shift detectors now temper by the stream's design effect. A real change still escalates."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from missionwatch.spec import SpecRegistry
from tests.conftest import stamp
from tests.core.conftest import fed_out

TEMPLATES = ["renewal-v1", "renewal-v2", "winback", "upsell"]
WEIGHTS = [0.4, 0.3, 0.2, 0.1]


def contacts(seed: int, n: int, rise_at: int | None = None) -> Iterator[dict[str, Any]]:
    """A registered retention mission of `n` contacts; from contact `rise_at` on, 'upsell'
    triples its weight."""
    rng = random.Random(seed)
    mid = f"dep-{seed}"
    subjects = [{"segment": rng.choice(["smb", "enterprise", "consumer"]),
                 "tenure_band": rng.choice(["m0-3", "m4-12", "y1+"]),
                 "age_band": rng.choice(["18-34", "35-49", "50-64", "65+"]),
                 "region": rng.choice(["north", "south", "east", "west"])} for _ in range(3000)]
    yield {"schema": "missionwatch/mission@1", "mission_id": mid, "spec": "retention", "objective": "o",
           "started_at": stamp(0)}
    i = t = 0
    for c in range(n):
        w = WEIGHTS if rise_at is None or c < rise_at else [0.4, 0.3, 0.2, 0.3]
        s, template = rng.randrange(len(subjects)), rng.choices(TEMPLATES, w)[0]
        for kind in ["email.send", "offer.discount", "followup.schedule"][:rng.randint(1, 3)]:
            attrs: dict[str, Any] = {"template": template}
            if kind == "offer.discount":
                attrs["discount_pct"] = 10.0
            t += rng.randint(1, 30)
            i += 1
            yield {"schema": "missionwatch/action@1", "receipt_id": f"r-{mid}-{i}", "mission_id": mid,
                   "agent_id": "a", "action_type": kind, "decision": "allowed",
                   "subject": {"id": f"s{s}", "cohort": subjects[s]}, "attributes": attrs,
                   "occurred_at": stamp(t)}


def escalations(registry: SpecRegistry, records: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return fed_out(registry, records, "escalation")


def test_fair_clustered_missions_do_not_escalate(registry: SpecRegistry) -> None:
    for seed in range(3):
        esc = escalations(registry, contacts(seed, 8000))
        assert esc == [], [(e["code"], e["reason"]) for e in esc]


def test_a_template_rise_in_clustered_traffic_still_escalates(registry: SpecRegistry) -> None:
    esc = escalations(registry, contacts(7, 8000, rise_at=2000))
    mix = [e for e in esc if e["code"] == "mix_shift"]
    assert mix and mix[0]["evidence"]["value"] == "upsell", [(e["code"], e["evidence"]) for e in esc]
    assert mix[0]["evidence"]["design_effect"] > 1.5  # the contacts' clustering was seen, and allowed for


def test_per_action_fairness_counts_subjects_as_its_units(registry: SpecRegistry) -> None:
    """The monitor names each action's subject to the fairness rules of per-action metrics:
    their intervals count subjects, not actions (tests/detect/test_fairness_clusters.py)."""
    m = Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True)
    records = list(contacts(7, 400))
    for r in records:
        assert not m.feed(r).rejected
    ms = m.missions[records[0]["mission_id"]]
    offers = [r for r in records if r.get("action_type") == "offer.discount"]
    for fd in ms.fairness["mean_discount"]:
        assert fd.units.clustered
        assert fd.units.total.n == len({r["subject"]["id"] for r in offers})
        assert fd.units.total.k == fd.total.n == len(offers)
