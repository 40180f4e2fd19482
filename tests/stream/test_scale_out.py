"""Two workers of one group split the partitions; when one is killed, the other takes over
its missions with their state intact: the output still equals a replay."""

from __future__ import annotations

import json
import time
from pathlib import Path

from missionwatch.signing import load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.stream.broker import EmbeddedBroker
from missionwatch.stream.demo import write_demo_specs
from tests.conftest import SPECS
from tests.stream.conftest import (
    KILLED_SESSION_TIMEOUT,
    Worker,
    expected_events,
    produce,
    published,
    rec_key,
    wait_committed,
)

# one mission per partition of four (the default partitioner's murmur2 of the key)
MISSIONS = {"m-0": 0, "m-1": 1, "m-5": 2, "m-gap": 3}


def _lines(tmp: Path) -> tuple[list[bytes], Path]:
    per: list[list[bytes]] = []
    for i, mission in enumerate(MISSIONS):
        gap = "age_band=65+" if i % 2 == 0 else None
        paths = write_campaign(Campaign(mission_id=mission, seed=7, actions=3000, subjects=800,
                                        discount_gap=gap, discount_gap_factor=0.4),
                               tmp / mission, seed_keys=True)  # one set of keys for all four
        per.append([ln.rstrip(b"\n") for ln in paths["receipts"].open("rb") if ln.strip()])
    return [ln for group in zip(*per, strict=False) for ln in group], tmp / "m-0" / "keyring.json"


def _wait(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.25)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s")


def test_two_workers_split_partitions_and_one_takes_over(broker: EmbeddedBroker, tmp_path: Path) -> None:
    lines, keyring = _lines(tmp_path)
    monitor_pem = tmp_path / "m-0" / "monitor-1.pem"
    specs = write_demo_specs(SPECS, tmp_path / "specs")
    expected, _ = expected_events(lines, keyring, load_private_key(monitor_pem), specs)
    total = sum(len(v) for v in expected.values())
    assert any(e["schema"] == "missionwatch/control@1" for v in expected.values() for e in v)

    a = Worker(broker, tmp_path / "a", keyring, monitor_pem, group="pair", specs=specs,
               session_timeout=KILLED_SESSION_TIMEOUT)
    b = Worker(broker, tmp_path / "b", keyring, monitor_pem, group="pair", specs=specs,
               session_timeout=KILLED_SESSION_TIMEOUT)
    try:
        a.wait_assigned(want=1)
        b.wait_assigned(want=1)
        _wait("a split of the four partitions",
              lambda: sorted(a.partitions() + b.partitions()) == [0, 1, 2, 3])
        split = (a.partitions(), b.partitions())
        half = len(lines) // 2
        produce(broker.bootstrap, lines[:half])
        wait_committed(broker.bootstrap, "pair", half)  # both have processed and committed it
        b.kill9()
        _wait("the takeover", lambda: a.partitions() == [0, 1, 2, 3])
        produce(broker.bootstrap, lines[half:])
        got = published(broker.bootstrap, total)
        replayed = a.metric("missionwatch_replayed_messages_total")
    finally:
        a.stop()
        b.stop()
    assert split[0] and split[1]
    assert replayed > 0  # b's partitions were rebuilt from the log
    want = {rec_key(e) for events in expected.values() for e in events}
    assert set(got) == want, (sorted(want - set(got)), sorted(set(got) - want))
    for events in expected.values():
        for e in events:
            assert len(set(got[rec_key(e)])) == 1  # redelivered: byte-identical
            assert json.loads(got[rec_key(e)][0]) == e
