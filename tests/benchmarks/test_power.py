"""The information-bound benchmark's pieces (the full run, `make bench-power`, writes
benchmarks/RESULTS.md): the oracle single look, and the test of whether any single look
could put a cohort `within`."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sps

from benchmarks import power
from missionwatch.detect.fairness import FairnessDelta
from missionwatch.spec import FairnessRule


def test_the_oracle_single_look_has_half_power_where_the_formula_says() -> None:
    n = power.oracle_single_look(0.10, 0.13, 0.025, 0.005)
    assert n == pytest.approx(2 * (sps.norm.ppf(1 - 0.0125) / 0.025) ** 2 * (0.09 + 0.13 * 0.87))
    rng = np.random.default_rng(3)
    per = int(n / 2)
    a = rng.binomial(per, 0.10, 20_000) / per
    b = rng.binomial(per, 0.13, 20_000) / per
    se = np.sqrt(a * (1 - a) / per + b * (1 - b) / per)
    power_at_n = float(np.mean(b - a - sps.norm.ppf(1 - 0.0125) * se > 0.005))
    assert 0.45 <= power_at_n <= 0.55, power_at_n


@pytest.mark.parametrize(("n", "could"), [(20_000, True), (200, False)])
def test_a_single_look_could_be_within_only_with_enough_data(n: int, could: bool) -> None:
    fd = FairnessDelta(FairnessRule(metric="m", harm="both", max_gap=0.02), "p", 0.01, 30, 2)
    rng = np.random.default_rng(4)
    for c in ("a", "b"):
        fd.update_many(c, (rng.random(n) < 0.1).astype(float))
    assert power.could_be_within(fd, "a", 0.05) is could
