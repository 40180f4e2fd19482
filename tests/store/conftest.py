"""A replayed simulated campaign: its ledger file and out records, for the store's tests."""

from __future__ import annotations

from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.replay import replay_file
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from tests.conftest import SPECS


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("query")
    c = write_campaign(Campaign(mission_id="m-q", seed=7, actions=3000, subjects=800,
                                discount_gap="age_band=65+", discount_gap_factor=0.3), root / "c")
    m = Monitor(SpecRegistry.load_dir(SPECS), signer=load_private_key(c["monitor-1"]),
                keyring=Keyring.load(c["keyring"]))
    replay_file(c["receipts"], root / "r", m, workers=0)
    events = [ln for ln in (root / "r" / "events.jsonl").read_bytes().splitlines() if ln.strip()]
    return {"root": root, "ledger": root / "r" / "ledger.duckdb", "events": events}
