"""Totals through the core: a limit on a sum or a count escalates on the action that takes the
total past its bound (mission-wide or per cohort), with the total as its evidence; a risk
signal on a count compares its rate per action of the mission, elevated when a type's share
triples after the baseline, never on fair traffic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from missionwatch.spec import SpecRegistry
from tests.conftest import SPECS, action, registration
from tests.core.conftest import of_kind

SPEC = '''[spec]
name = "totals"

[cohorts]
keys = ["segment"]
protected = ["age_band"]
min_samples = 50

[actions]
types = ["email.send", "offer.discount", "refund.issue"]

[baseline]
actions = {baseline}

[cadence]
actions = 100000

[[metrics]]
name = "refund_total"
label = "refunds paid"
per = "action"
actions = ["refund.issue"]
attribute = "amount"
aggregate = "sum"

[[metrics]]
name = "discounts"
per = "action"
actions = ["offer.discount"]
aggregate = "count"

[[metrics]]
name = "escalated"
per = "action"
decisions = ["escalated"]
aggregate = "count"
'''
COHORTS = [{"segment": "smb", "age_band": "65+"}, {"segment": "smb", "age_band": "35-49"},
           {"segment": "ent", "age_band": "35-49"}]


def monitor(tmp_path: Path, rules: str, baseline: int = 300) -> Monitor:
    (tmp_path / "default.toml").write_text((SPECS / "default.toml").read_text())
    (tmp_path / "totals.toml").write_text(SPEC.replace("{baseline}", str(baseline)) + rules)
    m = Monitor(SpecRegistry.load_dir(tmp_path), signer=Signer.generate("m"), allow_unsigned=True)
    m.feed(registration(spec="totals"))
    return m


def run(m: Monitor, records: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Each record's escalations."""
    out = []
    for r in records:
        step = m.feed(r)
        assert not step.rejected, step.rejected
        out.append(of_kind(step.out, "escalation"))
    return out


def refunds(seed: int, n: int = 400) -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray, np.ndarray]:
    """Emails and refunds across three cohorts: the records, and per action its cohort index,
    whether it is a refund and its amount (0 for an email)."""
    rng = np.random.default_rng(seed)
    who = rng.choice(3, n, p=[0.2, 0.5, 0.3])
    refund = rng.random(n) < 0.3
    amount = np.where(refund, np.round(rng.gamma(2.0, 40.0, n), 2), 0.0)
    records = [action(i, subject=f"c-{i % 97}", cohort=COHORTS[w],
                      **({"action_type": "refund.issue", "amount": float(a)} if r else {}))
               for i, (w, r, a) in enumerate(zip(who, refund, amount, strict=True))]
    return records, who, refund, amount


def test_a_limit_on_a_sum_escalates_on_the_action_that_takes_the_total_past_it(tmp_path: Path) -> None:
    m = monitor(tmp_path, '\n[[limits]]\nmetric = "refund_total"\nabove = 5000.0\nmin_samples = 1000\n')
    records, _, refund, amount = refunds(61)
    i = int(np.flatnonzero(np.cumsum(amount) > 5000.0)[0])
    escalations = run(m, records[:i + 1])
    assert m.missions["m-1"].n_actions == i + 1 == 205 and m.missions["m-1"].state == "paused"
    escalations += run(m, records[i + 1:])
    acting = [j for j, e in enumerate(escalations) if any(x["code"] == "hard_limit" for x in e)]
    assert acting == [i] and refund[:i + 1].sum() < 1000  # once; min_samples did not delay it
    [esc] = [x for x in escalations[i] if x["code"] == "hard_limit"]
    total = round(float(amount[:i + 1].sum()), 6)
    assert (esc["detector"], esc["severity"], esc["triggered_by"]) == ("limit:refund_total", "pause", f"r-m-1-{i}")
    assert esc["evidence"] == {"metric": "refund_total", "scope": "mission", "value": total,
                               "n": int(refund[:i + 1].sum()), "above": 5000.0, "below": None,
                               "min_samples": 1000, "aggregate": "sum"}
    assert esc["reason"] == (f"Refunds paid for the whole mission is {total:,.15g}, past the hard limit of "
                             "5,000 set by the spec.")
    ms = m.missions["m-1"]
    assert ms.state == "paused" and ms.n_actions == len(records)
    hl = ms.limits["refund_total"][0]
    assert hl.status()["values"] == {"mission": round(float(amount.sum()), 6)}


def test_a_limit_on_a_sum_per_cohort_escalates_each_cohort_on_its_own_crossing(tmp_path: Path) -> None:
    m = monitor(tmp_path, '\n[[limits]]\nmetric = "refund_total"\nscope = "cohort"\nabove = 3000.0\n'
                          'severity = "review"\n')
    records, who, _, amount = refunds(62, 600)
    escalations = run(m, records)
    found = sorted((j, x["evidence"]["scope"], x["evidence"]["value"]) for j, e in enumerate(escalations)
                   for x in e if x["code"] == "hard_limit")
    assert found == crossings(amount, who, 3000.0)
    assert [(j, s) for j, s, _ in found] == [(100, "age_band=35-49"), (216, "segment=smb"), (343, "segment=ent"),
                                             (593, "age_band=65+")]
    assert all(x["triggered_by"] == f"r-m-1-{j}" for j, e in enumerate(escalations) for x in e
               if x["code"] == "hard_limit")
    assert m.missions["m-1"].state == "running"  # review severity: escalated, not paused


def crossings(values: np.ndarray, who: np.ndarray, above: float) -> list[tuple[int, str, float]]:
    """Per cohort scope whose running total of `values` passes `above`: (index, scope, total)."""
    out = []
    for scope, mine in [("segment=smb", who < 2), ("segment=ent", who == 2), ("age_band=65+", who == 0),
                        ("age_band=35-49", who > 0)]:
        totals = np.cumsum(np.where(mine, values, 0.0))
        if totals[-1] > above:
            j = int(np.flatnonzero(totals > above)[0])
            out.append((j, scope, round(float(totals[j]), 6)))
    return sorted(out)


def test_a_limit_on_a_count_counts_matching_decisions_per_cohort(tmp_path: Path) -> None:
    m = monitor(tmp_path, '\n[[limits]]\nmetric = "escalated"\nscope = "cohort"\nabove = 20\n'
                          '\n[[limits]]\nmetric = "discounts"\nabove = 60\n')
    rng = np.random.default_rng(63)
    who = rng.choice(3, 500, p=[0.2, 0.5, 0.3])
    escalated = rng.random(500) < np.array([0.3, 0.05, 0.05])[who]
    discount = rng.random(500) < 0.2
    records = [action(i, subject=f"c-{i % 97}", cohort=COHORTS[w], decision="escalated" if e else "allowed",
                      action_type="offer.discount" if d else "email.send")
               for i, (w, e, d) in enumerate(zip(who, escalated, discount, strict=True))]
    escalations = run(m, records)
    found = [(j, x["evidence"]["scope"], x["evidence"]["value"]) for j, e in enumerate(escalations)
             for x in e if x["detector"] == "limit:escalated"]
    assert found == crossings(escalated.astype(float), who, 20.0)
    assert found == [(251, "segment=smb", 21.0), (349, "age_band=35-49", 21.0), (401, "age_band=65+", 21.0)]
    mine = {"segment=smb": who < 2, "age_band=35-49": who > 0, "age_band=65+": who == 0}
    for j, e in enumerate(escalations):  # n: the scope's actions so far (each observed, 1 when escalated)
        for x in e:
            if x["detector"] == "limit:escalated":
                assert x["evidence"]["n"] == int(mine[x["evidence"]["scope"]][:j + 1].sum())
    d = int(np.flatnonzero(np.cumsum(discount) > 60)[0])
    [(j, esc)] = [(j, x) for j, e in enumerate(escalations) for x in e if x["detector"] == "limit:discounts"]
    assert (j, esc["triggered_by"]) == (d, f"r-m-1-{d}")
    assert {k: esc["evidence"][k] for k in ("scope", "value", "n", "aggregate")} == {
        "scope": "mission", "value": 61, "n": 61, "aggregate": "count"}  # every discount counts
    hl = m.missions["m-1"].limits["escalated"][0]
    assert hl.status()["values"]["age_band=65+"] == int((escalated & (who == 0)).sum())
    assert hl.status()["values"]["segment=ent"] == int((escalated & (who == 2)).sum())


# ------------------------------------------------------------ risk on a count: its rate per action
BASELINE = 800


def discount_mission(m: Monitor, mission: str, seed: int, after: float,
                     n: int = 2400) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """A mission whose actions are discounts with chance 0.1 in the baseline and `after`
    since: whether each action was a discount, and its risk escalations."""
    m.feed(registration(mission, spec="totals"))
    rng = np.random.default_rng(seed)
    discount = rng.random(n) < np.where(np.arange(n) < BASELINE, 0.1, after)
    subjects = rng.integers(0, 300, n)
    escalations = []
    for i, (d, s) in enumerate(zip(discount, subjects, strict=True)):
        step = m.feed(action(i, mission=mission, subject=f"{mission}-c-{s}", cohort=COHORTS[i % 3],
                             action_type="offer.discount" if d else "email.send"))
        assert not step.rejected
        escalations += [e for e in of_kind(step.out, "escalation") if e["code"] == "risk_elevated"]
    return discount, escalations


@pytest.mark.parametrize(("after", "verdicts"), [(0.3, {"elevated"}), (0.1, {"unchanged", "within_threshold"})])
def test_a_risk_signal_on_a_count_reads_its_rate_per_action(tmp_path: Path, after: float,
                                                             verdicts: set[str]) -> None:
    """Eight seeded missions each: a discount share tripled after the baseline (0.1 -> 0.3, 800
    actions then 1,600) reads elevated in every one, and escalates once; a steady share in none."""
    m = monitor(tmp_path, '\n[[risk]]\nmetric = "discounts"\nmax_ratio = 1.5\n', baseline=BASELINE)
    for seed in range(8):
        mission = f"m-{seed}"
        discount, escalations = discount_mission(m, mission, 70 + seed, after)
        rs = m.missions[mission].risk["discounts"][0]
        got = rs.to_json()
        assert rs.verdict in verdicts, (seed, got)
        assert got["n"] == len(discount) - BASELINE and got["baseline_n"] == BASELINE  # every action counts
        assert got["value"] == round(discount[BASELINE:].mean(), 6)
        assert got["baseline"] == round(discount[:BASELINE].mean(), 6)
        assert got["aggregate"] == "count"
        assert len(escalations) == (after > 0.1), (seed, escalations)
        for e in escalations:
            assert e["detector"] == "risk:discounts" and e["evidence"]["aggregate"] == "count"
            assert e["reason"].startswith("Discounts per action is ")


def test_a_risk_signal_on_a_sum_reads_every_action_s_share_of_the_total(tmp_path: Path) -> None:
    """Each action is one observation of its phase: its refund amount, or 0 (an email, a refund
    without an amount)."""
    m = monitor(tmp_path, '\n[[risk]]\nmetric = "refund_total"\n', baseline=100)
    records, _, _, amount = refunds(64, 300)
    records[150]["attributes"] = {}  # a refund without its amount: 0 toward the total
    records[150]["action_type"] = "refund.issue"
    amount[150] = 0.0
    run(m, records)
    rs = m.missions["m-1"].risk["refund_total"][0]
    assert (rs.base.n, rs.post.n) == (100, 200)
    assert rs.base.total == pytest.approx(amount[:100].sum()) and rs.post.total == pytest.approx(amount[100:].sum())
    assert rs.to_json()["value"] == round(amount[100:].mean(), 6) and rs.to_json()["aggregate"] == "sum"
