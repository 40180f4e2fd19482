"""Golden files: the example stream for detectors/retention.toml produces exactly
the out records in expected-events.jsonl, compared whole. After an intended change
of behaviour, `make golden` regenerates them; the diff is reviewed like code."""

from __future__ import annotations

import json

from missionwatch.monitor import Monitor
from missionwatch.replay import replay_lines
from missionwatch.signing import Keyring, load_private_key
from missionwatch.spec import SpecRegistry
from missionwatch.verify import verify_events
from tests.conftest import SPECS

EXAMPLE = SPECS / "examples" / "retention"


def test_retention_example_produces_the_golden_out_records() -> None:
    monitor = Monitor(SpecRegistry.load_dir(SPECS), signer=load_private_key(EXAMPLE / "monitor-1.pem"),
                      keyring=Keyring.load(EXAMPLE / "keyring.json"))
    result = replay_lines(monitor, (EXAMPLE / "stream.jsonl").read_text().splitlines())
    expected = [json.loads(x) for x in (EXAMPLE / "expected-events.jsonl").read_text().splitlines()]
    assert not result.rejected
    assert len(result.events) == len(expected)
    for got, want in zip(result.events, expected, strict=True):
        assert got == want
    kinds = [e["schema"].split("/")[1] for e in expected]
    assert "escalation@1" in kinds and kinds[-1] == "strategy@1"
    first = next(e["escalation_id"] for e in expected if e["schema"] == "missionwatch/escalation@1")
    assert first not in expected[-1]["open_escalations"]  # the review acknowledged it


def test_golden_out_records_verify() -> None:
    report = verify_events(EXAMPLE / "expected-events.jsonl", Keyring.load(EXAMPLE / "keyring.json"))
    assert report.ok and report.records > 0
