"""A paused mission and a fair one, replayed offline into a console source (no broker)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from missionwatch.console.source import MonitorSource
from missionwatch.monitor import Monitor
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.stream.demo import write_demo_specs
from tests.conftest import SPECS


def campaigns(root: Path) -> dict[str, Any]:
    """m-gap: a discount gap for 65+ that pauses it under the demo specs; m-fair: nothing planted."""
    specs = write_demo_specs(SPECS, root / "specs")
    gap = write_campaign(Campaign(mission_id="m-gap", seed=7, actions=3000, subjects=800,
                                  discount_gap="age_band=65+", discount_gap_factor=0.3), root / "gap",
                         seed_keys=True)
    fair = write_campaign(Campaign(mission_id="m-fair", seed=7, actions=1500, subjects=600), root / "fair",
                          seed_keys=True)  # the same seed: the same keys
    return {"specs": specs, "gap": gap, "fair": fair}


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("console")
    c = campaigns(root)
    keyring = Keyring.load(c["gap"]["keyring"])
    return {**c, "keyring": keyring, "reviewer": load_private_key(c["gap"]["reviewer-1"]),
            "monitor": load_private_key(c["gap"]["monitor-1"])}


def source(offline: dict[str, Any]) -> tuple[MonitorSource, list[dict[str, Any]]]:
    """A fresh source fed both campaigns; every out record, in order."""
    m = Monitor(SpecRegistry.load_dir(offline["specs"]), signer=offline["monitor"], keyring=offline["keyring"])
    src = MonitorSource(m)
    out: list[dict[str, Any]] = []
    for name in ("gap", "fair"):
        for ln in offline[name]["receipts"].open("rb"):
            if ln.strip():
                out += src.feed(ln).out
    return src, out


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in path.open("rb") if ln.strip()]
