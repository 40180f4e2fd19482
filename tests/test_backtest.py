"""`missionwatch backtest`: one campaign under two spec variants, side by side; the planted
changes found and their delays reported; bad input refused with its reason."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from missionwatch.backtest import backtest, planted_changes
from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, Signer
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry, load_spec
from tests.conftest import SPECS


@pytest.fixture(scope="module")
def past(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("backtest")
    c = write_campaign(Campaign(mission_id="m-past", seed=4, actions=10_000, subjects=2_500,
                                discount_gap="age_band=65+", discount_gap_factor=0.4,
                                new_template="winback-v3", change_at=0.6), root / "c")
    (root / "b").mkdir()
    text = (SPECS / "retention.toml").read_text()
    start = text.index('metric = "discount_rate"')
    end = text.index("[[", start)
    (root / "b" / "retention.toml").write_text(text[:start] + text[start:end].replace("max_gap = 0.05", "max_gap = 0.02")
                                               + text[end:])
    return {"root": root, "c": c, "b": root / "b" / "retention.toml"}


def _report(past: dict[str, Any], spec: Path) -> Any:
    registry = SpecRegistry.load_dir(SPECS)
    variant = load_spec(spec)
    monitor = Monitor(SpecRegistry({**registry.specs, variant.name: variant}), signer=Signer.generate("bt"),
                      keyring=Keyring.load(past["c"]["keyring"]))
    with past["c"]["receipts"].open("rb") as f:
        return backtest("x", monitor, f, planted=planted_changes(past["c"]["planted"]))


@pytest.fixture(scope="module")
def reports(past: dict[str, Any]) -> dict[str, Any]:
    return {"A": _report(past, SPECS / "retention.toml"), "B": _report(past, past["b"])}


def test_the_planted_changes_are_found_with_their_delays(past: dict[str, Any], reports: dict[str, Any]) -> None:
    truth = planted_changes(past["c"]["planted"])
    assert [c["kind"] for c in truth["changes"]] == ["discount_gap", "new_template"]
    assert truth["changes"][1]["from_action"] == 6000
    a = reports["A"]
    assert a.mission == "m-past" and a.actions == 10_000
    gap = a.rules["fairness:discount_rate"]
    assert gap.first_cohort == "age_band=65+" and gap.escalations >= 1
    assert gap.delay_actions == gap.first_actions  # the gap is there from the first action
    template = a.rules["novelty:template"]
    assert template.first_actions is not None and 6000 < template.first_actions < 6100
    assert template.delay_actions == template.first_actions - 6000
    assert set(a.rules) >= {f"fairness:{m}" for m in ("discount_rate", "complaint_rate", "escalation_rate",
                                                       "mean_discount", "cancellation_delay")}
    assert len(gap.min_detectable_gap) == 4 and all(g is None or g > 0 for g in gap.min_detectable_gap)
    assert sum(gap.verdicts.values()) == 8  # four age bands and four regions


def test_a_tighter_threshold_escalates_no_later(reports: dict[str, Any]) -> None:
    a, b = (reports[k].rules["fairness:discount_rate"] for k in "AB")
    assert b.first_actions is not None and a.first_actions is not None and b.first_actions <= a.first_actions


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "missionwatch.cli", "backtest", *args], capture_output=True,
                          text=True, timeout=300)


def test_the_command_reports_side_by_side(past: dict[str, Any]) -> None:
    c = past["c"]
    out = _cli(str(c["receipts"]), "--spec", str(SPECS / "retention.toml"), "--spec", str(past["b"]),
               "--keys", str(c["keyring"]), "--planted", str(c["planted"]), "--json")
    assert out.returncode == 0, out.stderr
    reports = json.loads(out.stdout)
    assert [r["spec"] for r in reports] == ["A", "B"] and reports[1]["spec_file"] == str(past["b"])
    assert reports[0]["rules"]["novelty:template"]["delay_actions"] < 100
    table = _cli(str(c["receipts"]), "--spec", str(SPECS / "retention.toml"), "--spec", str(past["b"]),
                 "--keys", str(c["keyring"]), "--planted", str(c["planted"]))
    assert table.returncode == 0 and f"B = {past['b']}" in table.stdout
    assert "fairness:discount_rate" in table.stdout and "age_band=65+" in table.stdout


def test_bad_input_is_refused_with_its_reason(past: dict[str, Any], tmp_path: Path) -> None:
    c = past["c"]
    assert "no such file" in _cli(str(tmp_path / "nope.jsonl"), "--spec", str(SPECS / "retention.toml")).stderr
    odd = tmp_path / "variant.toml"
    odd.write_text((SPECS / "retention.toml").read_text())
    out = _cli(str(c["receipts"]), "--spec", str(odd))
    assert out.returncode == 2 and "the file is named variant.toml" in out.stderr
    (tmp_path / "planted.json").write_text('{"changes": 3}')
    out = _cli(str(c["receipts"]), "--spec", str(SPECS / "retention.toml"), "--planted", str(tmp_path / "planted.json"))
    assert out.returncode == 2 and "not a planted.json" in out.stderr
