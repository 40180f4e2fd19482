"""Risk signals on outcomes that follow the contract to the letter: `follows` is optional.
Named outcomes are compared per contact action of each phase (a 3x spike reads elevated,
about 3x). Outcomes that name no action are compared through isolated contacts when the
spec says how long outcomes take (`[outcomes] within`, the stock spec: 3d); without it, a
signal whose outcomes are mostly such says `unavailable`, and why, instead of reading
"0 against 0, unchanged"."""

from __future__ import annotations

from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from missionwatch.sim import Campaign, generate
from missionwatch.spec import OutcomesSpec, SpecRegistry


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


def without_within(registry: SpecRegistry) -> SpecRegistry:
    """The stock specs, with the retention spec's `[outcomes] within` taken off."""
    spec = registry.specs["retention"]
    bare = spec.model_copy(update={"outcomes": OutcomesSpec(types=spec.outcomes.types)})
    return SpecRegistry({**registry.specs, "retention": bare})


@pytest.mark.parametrize("seed", [1])
def test_a_3x_complaint_spike_on_plain_outcomes_is_elevated(registry: SpecRegistry, seed: int) -> None:
    """No complaint names its action: isolated runs carry the comparison. 20,000 subjects for
    20,000 actions: about 1,300 isolated runs in the baseline (with the sim's 5,000 subjects
    about 370, and the verdict stays `unchanged` at ratio 3.6)."""
    recs = plain(generate(Campaign(mission_id="plain", seed=seed, actions=20_000, subjects=20_000, change_at=0.1,
                                   complaint_spike=3.0, complaint_rate=0.03)))
    signal = complaint_signal(registry, recs)
    assert signal["verdict"] == "elevated", signal
    assert 2.0 <= signal["ratio"] <= 4.0, signal
    assert signal["basis"] == "isolated_contacts" and signal["baseline_n"] > 1000, signal


def test_fair_plain_outcomes_read_about_1x(registry: SpecRegistry) -> None:
    """The same campaign without the spike: no verdict above `unchanged`, ratio near 1 (the
    latest-action guess read 1.7x to 3.3x here)."""
    recs = plain(generate(Campaign(mission_id="plain", seed=1, actions=20_000, subjects=20_000, change_at=0.1,
                                   complaint_rate=0.03)))
    signal = complaint_signal(registry, recs)
    assert signal["verdict"] in ("unchanged", "within_threshold"), signal
    assert 0.7 <= signal["ratio"] <= 1.3, signal


def test_plain_outcomes_without_within_make_the_signal_unavailable(registry: SpecRegistry) -> None:
    """Complaints that name no action, and a spec that does not say how long outcomes take:
    `unavailable`, never a quiet 'unchanged' (0 against 0)."""
    recs = plain(generate(Campaign(mission_id="plain", seed=3, actions=20_000, change_at=0.1)))
    n = sum(r["schema"] == "missionwatch/outcome@1" and r["outcome_type"] == "complaint" for r in recs)
    signal = complaint_signal(without_within(registry), recs)
    assert signal["verdict"] == "unavailable", signal
    assert signal["unplaced"] == n > 100
    assert signal["reason"] == (f"{n:,} of the {n:,} outcomes counted could not be placed before or after "
                                "the baseline: they name no known contact action (`follows`), and the spec "
                                "gives no [outcomes] within to compare isolated contacts")


def test_too_few_isolated_contacts_say_so(registry: SpecRegistry) -> None:
    """A short plain mission: the isolated comparison is `insufficient_data`, with how many
    isolated runs have closed."""
    recs = plain(generate(Campaign(mission_id="plain", seed=5, actions=2_100, change_at=0.1, complaint_rate=0.05)))
    signal = complaint_signal(registry, recs)
    assert signal["verdict"] == "insufficient_data" and signal["basis"] == "isolated_contacts", signal
    assert signal["reason"].startswith("most outcomes name no action: compared through isolated runs of "
                                       f"contacts, of which {signal['baseline_n']:,} in the baseline and "
                                       f"{signal['n']:,} since have closed")


def test_a_few_plain_outcomes_leave_the_comparison_standing(registry: SpecRegistry) -> None:
    """Most complaints name their action, a few do not: the named ones are compared."""
    recs = list(generate(Campaign(mission_id="mixed", seed=4, actions=20_000, change_at=0.1, complaint_spike=3.0,
                                  complaint_rate=0.03)))
    complaints = [i for i, r in enumerate(recs) if r.get("outcome_type") == "complaint"]
    for i in complaints[::10]:
        recs[i] = {k: v for k, v in recs[i].items() if k != "follows"}
    signal = complaint_signal(registry, recs)
    assert signal["verdict"] == "elevated" and signal["unplaced"] == len(complaints[::10]), signal
