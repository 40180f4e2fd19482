"""The gate keeps what it could not publish: a broker outage loses no receipt (at least once)."""

from __future__ import annotations

import asyncio
import json

from missionwatch.gate import Gate
from missionwatch.signing import Keyring, Signer
from missionwatch.stream.broker import EmbeddedBroker, create_topics, free_port
from tests.conftest import action
from tests.stream.conftest import consume


def test_records_survive_a_broker_outage(keys: dict[str, Signer], keyring: Keyring) -> None:
    port = free_port()
    broker = EmbeddedBroker(port=port).start()
    create_topics(broker.bootstrap, 4)

    async def go() -> int:
        gate = Gate(broker.bootstrap, keyring, signer=keys["gate"], linger=3600)  # flushes by hand only
        await gate.start()
        try:
            for i in range(3):
                await gate.send(action(i))
            broker.stop()  # the broker dies with the records still queued
            try:
                await asyncio.wait_for(gate.flush(), 5)
                raise AssertionError("a flush to a dead broker succeeded")
            except Exception as exc:
                assert not isinstance(exc, AssertionError), exc
            assert gate.sent == 0 and len(gate._queue["m-1"]) == 3
            broker.start()  # back (empty: it keeps topics in memory)
            await asyncio.to_thread(create_topics, broker.bootstrap, 4)
            await asyncio.wait_for(gate.flush(), 60)
            return gate.sent
        finally:
            await gate.stop()

    try:
        assert asyncio.run(go()) == 3
        got = consume(broker.bootstrap, "missionwatch.in", until=1, timeout=30)
    finally:
        broker.stop()
    envelopes = [json.loads(v) for *_, v in got]
    # at least once: the producer may still deliver the batch it was sending when the broker
    # died, beside the gate's second try; the monitor counts such copies as duplicates
    items = {json.dumps(it, sort_keys=True) for e in envelopes for it in e["items"]}
    assert sorted(json.loads(it)["receipt_id"] for it in items) == ["r-m-1-0", "r-m-1-1", "r-m-1-2"]
    assert all(e["signature"]["key_id"] == "gate-1" for e in envelopes)
