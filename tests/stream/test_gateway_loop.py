"""The gateway in the loop, against the real embedded broker and a `missionwatch run` worker:
a pause reaches the gate client within a second of the receipt that triggered it, a
reviewer's resume reaches it too."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from missionwatch.gate import Gate
from missionwatch.monitor import Monitor
from missionwatch.replay import replay_lines
from missionwatch.signing import Keyring, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.stream.broker import EmbeddedBroker
from missionwatch.stream.demo import write_demo_specs
from tests.conftest import SPECS
from tests.stream.conftest import Worker

# Receipts per second from the simulated gateway: a rate the worker sustains with half a core
# (about 0.4 ms a record; CI runs beside other work). Faster, the worker falls behind and the
# pause waits its turn behind the backlog: that is throughput (benchmarks/stream.py), not the
# pipeline's latency measured here.
RATE = 600


def campaign(root: Path, mission: str) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    paths = write_campaign(Campaign(mission_id=mission, seed=7, actions=6000, subjects=1600,
                                    discount_gap="age_band=65+", discount_gap_factor=0.4), root / mission)
    return [json.loads(ln) for ln in paths["receipts"].open("rb") if ln.strip()], paths


@pytest.fixture(scope="module")
def setup(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("loop")
    specs = write_demo_specs(SPECS, root / "specs")  # a discount gap pauses the mission
    records, paths = campaign(root, "m-loop")
    worker = Worker(broker, root / "data", paths["keyring"], paths["monitor-1"], group="loop", specs=specs)
    try:
        worker.wait_assigned(want=4)
        yield {"root": root, "specs": specs, "records": records, "paths": paths, "worker": worker}
    finally:
        assert worker.stop() == 0


def _expected(specs: Path, paths: dict[str, Path], lines: list[bytes]) -> list[dict[str, Any]]:
    m = Monitor(SpecRegistry.load_dir(specs), signer=load_private_key(paths["monitor-1"]),
                keyring=Keyring.load(paths["keyring"]))
    return replay_lines(m, lines).events


def test_a_pause_reaches_the_gate_within_a_second_and_a_resume_follows(broker: EmbeddedBroker,
                                                                       setup: dict[str, Any]) -> None:
    records, paths = setup["records"], setup["paths"]
    expected = _expected(setup["specs"], paths, [json.dumps(r).encode() for r in records])
    escalation = next(e for e in expected if e["schema"] == "missionwatch/escalation@1")
    assert escalation["severity"] == "pause"
    trigger = escalation["triggered_by"]
    keyring = Keyring.load(paths["keyring"])

    async def go() -> dict[str, Any]:
        sent_at: dict[str, float] = {}
        held = 0
        async with Gate(broker.bootstrap, keyring, signer=load_private_key(paths["gate-1"])) as gate:
            for i, rec in enumerate(records):
                if gate.is_paused("m-loop"):
                    held = len(records) - i  # the gateway holds the agent: nothing more is sent
                    break
                await gate.send(rec)
                sent_at[str(rec.get("receipt_id"))] = time.monotonic()
                if i % 15 == 14:
                    await asyncio.sleep(15 / RATE)
            assert await gate.wait_until(lambda: gate.is_paused("m-loop"), 30), "no pause reached the gate"
            paused = gate.state("m-loop")
            assert paused is not None
            status = setup["worker"].get("/api/missions/m-loop/status")

            review = {"schema": "missionwatch/review@1", "review_id": "rv-loop-1", "mission_id": "m-loop",
                      "escalation_id": paused.cause, "reviewer": "user:lee.risk", "decision": "resume",
                      "note": "gap explained", "occurred_at": records[-1]["occurred_at"]}
            async with Gate(broker.bootstrap, keyring, signer=load_private_key(paths["reviewer-1"])) as desk:
                await desk.send(review)
            resumed = await gate.wait_until(lambda: not gate.is_paused("m-loop"), 30)
            return {"sent": gate.sent, "sent_at": sent_at, "held": held, "paused": paused, "status": status, "resumed": resumed,
                    "after": gate.state("m-loop"), "problems": list(gate.problems),
                    "head": gate.chains.heads.get("m-loop")}

    got = asyncio.run(go())
    paused = got["paused"]
    latency = paused.seen_at - got["sent_at"][trigger]
    print(f"pause latency {latency * 1000:.0f} ms after the triggering receipt; {got['held']} receipts held")
    assert paused.state == "paused" and paused.cause == escalation["escalation_id"]
    assert 0 < latency < 1.0
    assert got["held"] > 0  # the agent was stopped before its campaign ended
    code, body = got["status"]
    assert code == 200 and json.loads(body)["state"] == "paused"
    assert json.loads(body)["cause"] == escalation["escalation_id"]
    assert got["resumed"] and got["after"].state == "running" and got["after"].cause == "rv-loop-1"
    assert got["head"] is not None and got["head"][0] >= got["after"].seq  # the chain verified up to it
    assert got["problems"] == []

    worker = setup["worker"]
    deadline = time.monotonic() + 30
    while worker.metrics().get('missionwatch_consumer_lag{partition="3"}') != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    m = worker.metrics()
    assert m['missionwatch_consumer_lag{partition="3"}'] == 0  # m-loop's partition, all processed
    assert m["missionwatch_records_in_total"] == got["sent"] + 1  # and the review
    assert m["missionwatch_escalations_total"] == 1 and m["missionwatch_controls_total"] == 2
    assert m["missionwatch_processing_seconds_count"] == m["missionwatch_messages_in_total"] > 0
    assert m["missionwatch_partitions"] == 4
