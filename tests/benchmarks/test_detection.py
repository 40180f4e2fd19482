"""The detection benchmark's smoke version: 100 seeded missions per setting (the full
run, `make bench-detection`, uses 1,000 and writes benchmarks/RESULTS.md). The
verdicts' promises, checked at this scale."""

from __future__ import annotations

import pytest

from benchmarks import detection as bench

SEED = 20261124
GAP = "gap 0.10 vs 0.13 from the start"


@pytest.fixture(scope="module")
def results() -> list[bench.Result]:
    """Every setting of the smoke run but the strict intervals on the gap (`strict_gap`)."""
    null, gap = bench.STRICT_SETTINGS
    assert gap[0].name == GAP
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bench, "STRICT_SETTINGS", [null])  # the null keeps its seed, SEED + 50
        return bench.run(100, seed=SEED, peers=False, calib=100, mix_horizon=8000, progress=lambda _: None)


@pytest.fixture(scope="module")
def strict_gap() -> bench.Result:
    """The strict intervals on the gap's missions of the smoke run (30, seed SEED + 51), up to
    the first that finds it: run on their first 1, 2, 4, ... (the same missions each time),
    which stops where one does. Whether any of the 30 finds it is all a test reads."""
    setting, horizon, share = bench.STRICT_SETTINGS[1]
    missions, k = max(int(100 * share), 10), 1
    while True:
        rows = bench.run_strict(setting, k, SEED + 51, horizon)
        strict = next(r for r in rows if "strict" in r.detector)
        if strict.any_alarm or k == missions:
            return strict
        k = min(2 * k, missions)


def test_fairness_false_alarms_stay_within_alpha(results) -> None:
    nulls = [r for r in results if r.null and r.detector == "fairness delta (missionwatch)"]
    assert len(nulls) == 5
    for r in nulls:
        assert r.any_alarm / r.missions <= bench.ALPHA, r.setting
    # the naive repeated test, on the same missions, cries wolf on a large share of them
    naive = bench.find(results, "fair, 0.10 both", "naive z-test")
    assert naive.any_alarm / naive.missions > 0.25


def test_fairness_finds_a_three_point_gap_within_3500_receipts_per_cohort(results) -> None:
    r = bench.find(results, GAP, "fairness delta")
    assert r.any_alarm / r.missions >= 0.95
    assert bench.median_delay(r) / 2 <= 3500


def test_rate_change_delay_against_the_oracle(results) -> None:
    ours = bench.find(results, "rate 0.10 -> 0.15, alpha 0.001", "e-CUSUM")
    oracle = bench.find(results, "rate 0.10 -> 0.15, alpha 0.001", "oracle CUSUM")
    assert ours.any_alarm == ours.missions
    assert bench.median_delay(ours) <= 1.5 * bench.median_delay(oracle)
    null = bench.find(results, "rate 0.10 -> 0.15, alpha 0.001 (null)", "e-CUSUM")
    assert null.receipts / max(null.false_alarms, 1) >= 1 / 0.001  # ARL0 >= 1/alpha


def test_tactic_mix_change(results) -> None:
    null = bench.find(results, "tactic mix: winback 5% -> 13%, alpha 1e-05 (null)", "mix e-CUSUM")
    change = bench.find(results, "tactic mix: winback 5% -> 13%, alpha 1e-05", "mix e-CUSUM")
    assert 1e4 * null.false_alarms / null.receipts <= 0.05
    assert change.any_alarm / change.missions >= 0.95
    assert bench.median_delay(change) <= 600


def test_strict_intervals_keep_their_promise_where_the_asymptotic_ones_strain(results, strict_gap) -> None:
    name = "fair, rare event 0.02 both, 5/95 cohorts, 4,000 receipts"
    strict = bench.find(results, name, "fairness delta, strict")
    assert strict.missions == 100 and strict.any_alarm / strict.missions <= bench.ALPHA
    assert strict_gap.setting == GAP and strict_gap.detector.startswith("fairness delta, strict")
    assert strict_gap.any_alarm >= 1  # slower than the asymptotic intervals, but it does find the gap


@pytest.fixture(scope="module")
def dependent() -> dict[tuple[str, str | None], list[bench.Result]]:
    """The dependence scenarios' smoke version: 4 missions per setting (the full run, `make bench-detection`: 200)."""
    runs: list[tuple[str, str | None]] = [(s, None) for s in bench.traffic.SCENARIOS]
    runs += [("contacts", "template"), ("contacts", "followup")]
    peers = {("contacts", None), ("waves", None)}  # where a test compares with them
    return {(s, c): bench.run_dependence(s, c, 4, seed=20261201, peer=(s, c) in peers) for s, c in runs}


def _pick(rows: list[bench.Result], detector: str, ours: bool) -> bench.Result:
    who = "missionwatch" if ours else "assuming independent"
    return next(r for r in rows if r.detector.startswith(detector) and who in r.detector)


@pytest.mark.parametrize("scenario", ["iid", "contacts", "heavy", "cycles"])
def test_shift_detectors_keep_their_budget_on_dependent_traffic(dependent, scenario: str) -> None:
    for detector in ("template mix", "follow-up pressure"):
        r = _pick(dependent[(scenario, None)], detector, ours=True)
        assert r.receipts == 4 * bench.DEP_HORIZON
        assert 1e4 * r.false_alarms / r.receipts <= 1e4 * bench.DEP_ALPHA, (scenario, detector)


def test_the_independence_assuming_detectors_cry_wolf_on_contacts(dependent) -> None:
    for detector in ("template mix", "follow-up pressure"):
        assert _pick(dependent[("contacts", None)], detector, ours=False).any_alarm >= 3


def test_waves_are_beyond_what_tempering_absorbs_but_far_fewer_alarms(dependent) -> None:
    """Runs of 200-2,000 actions of one template are longer than the lags the design effect
    sees: the README says the baseline must span them. Tempering still cuts the alarms."""
    rows = dependent[("waves", None)]
    ours, peer = _pick(rows, "template mix", True), _pick(rows, "template mix", False)
    assert ours.false_alarms * 10 < peer.false_alarms


@pytest.mark.parametrize(("change", "detector"), [("template", "template mix"), ("followup", "follow-up")])
def test_planted_changes_in_clustered_traffic_are_found(dependent, change: str, detector: str) -> None:
    r = _pick(dependent[("contacts", change)], detector, ours=True)
    assert r.any_alarm == r.missions and bench.median_delay(r) <= 6000
