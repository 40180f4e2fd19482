"""How a spec's alpha is split: over every rule x protected proxy x place for a judged cohort;
a proxy whose values the spec declares has no more places than values (no alpha is spent on
places no cohort can take)."""

from __future__ import annotations

from pathlib import Path

from missionwatch.core.plan import Plan
from missionwatch.spec import load_spec
from tests.conftest import SPECS


def test_declared_values_bound_a_proxys_places(tmp_path: Path) -> None:
    stock = Plan(load_spec(SPECS / "retention.toml"))
    assert stock.places == {"age_band": 8, "region": 8}
    assert stock.n_tests == 5 * 16 and stock.fairness_alpha == 0.05 / 80
    text = (SPECS / "retention.toml").read_text().replace(
        "min_samples = 50\n", 'min_samples = 50\nvalues.age_band = ["18-34", "35-49", "50-64", "65+"]\n', 1)
    path = tmp_path / "retention.toml"
    path.write_text(text)
    declared = Plan(load_spec(path))
    assert declared.places == {"age_band": 4, "region": 8}
    assert declared.n_tests == 5 * 12 and declared.fairness_alpha == 0.05 / 60
