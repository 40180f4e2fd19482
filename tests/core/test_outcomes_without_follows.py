"""Risk signals on outcomes that follow the contract to the letter: `follows` is optional.
An outcome that names no contact action has no phase to compare; a signal whose outcomes
are mostly such says `unavailable`, and why, instead of reading "0 against 0, unchanged".
Named outcomes keep their comparison (a 3x spike reads elevated, about 3x)."""

from __future__ import annotations

from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from missionwatch.sim import Campaign, generate
from missionwatch.spec import SpecRegistry


def plain(recs: Any) -> list[dict[str, Any]]:
    """The records with `follows` taken off every outcome."""
    return [{k: v for k, v in r.items() if k != "follows"} for r in recs]


def complaint_signal(registry: SpecRegistry, records: list[dict[str, Any]]) -> dict[str, Any]:
    m = Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True)
    for r in records:
        step = m.feed(r)
        assert not step.rejected, step.rejected
    view = m.view(records[0]["mission_id"])
    assert view is not None
    return view.receipt_body("x")["risk_signals"]["complaint_rate"]


@pytest.mark.parametrize("seed", [1, 2])
def test_a_3x_complaint_spike_on_named_outcomes_is_elevated(registry: SpecRegistry, seed: int) -> None:
    """At a 3% complaint rate (about 60 complaints in the 2,000-action baseline). At 1%, about
    20, the baseline is too uncertain to tell 3x from 1.5x in half the seeds: the power part
    of the statistics issue."""
    recs = list(generate(Campaign(mission_id="spike", seed=seed, actions=20_000, change_at=0.1,
                                  complaint_spike=3.0, complaint_rate=0.03)))
    signal = complaint_signal(registry, recs)
    assert signal["verdict"] == "elevated", signal
    assert 2.0 <= signal["ratio"] <= 4.0, signal
    assert "unplaced" not in signal and "reason" not in signal


@pytest.mark.parametrize("spike", [None, 3.0])
def test_plain_outcomes_make_the_signal_unavailable_with_its_reason(registry: SpecRegistry,
                                                                   spike: float | None) -> None:
    """Fair or spiking, complaints that name no action cannot be compared: `unavailable`,
    never a quiet 'unchanged' (the baseline would read 0 against 0)."""
    recs = plain(generate(Campaign(mission_id="plain", seed=3, actions=20_000, change_at=0.1, complaint_spike=spike)))
    n = sum(r["schema"] == "missionwatch/outcome@1" and r["outcome_type"] == "complaint" for r in recs)
    signal = complaint_signal(registry, recs)
    assert signal["verdict"] == "unavailable", signal
    assert signal["unplaced"] == n > 100
    assert signal["reason"] == (f"{n:,} of the {n:,} outcomes counted could not be placed before or after "
                                "the baseline: they name no known contact action (`follows`)")


def test_a_few_plain_outcomes_leave_the_comparison_standing(registry: SpecRegistry) -> None:
    """Most complaints name their action, a few do not: the named ones are compared."""
    recs = list(generate(Campaign(mission_id="mixed", seed=4, actions=20_000, change_at=0.1, complaint_spike=3.0,
                                  complaint_rate=0.03)))
    complaints = [i for i, r in enumerate(recs) if r.get("outcome_type") == "complaint"]
    for i in complaints[::10]:
        recs[i] = {k: v for k, v in recs[i].items() if k != "follows"}
    signal = complaint_signal(registry, recs)
    assert signal["verdict"] == "elevated" and signal["unplaced"] == len(complaints[::10]), signal
