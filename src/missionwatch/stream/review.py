"""`missionwatch review`'s Kafka side: publish a signed review to missionwatch.in and wait for
the monitor's answer on the out, control and rejected topics."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from ..console.review import fate_of
from .core import CONTROL, IN, OUT, REJECTED

__all__ = ["submit_review"]


async def _submit(bootstrap: str, review: dict[str, Any], wait: float) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in (OUT, CONTROL, REJECTED)
               for p in sorted(consumer.partitions_for_topic(t) or await _partitions(consumer, t))]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:  # settle the positions before publishing: only what follows the review counts
            await consumer.position(tp)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(IN, json.dumps(review, ensure_ascii=False, separators=(",", ":")).encode(),
                                         key=str(review["mission_id"]).encode())
        finally:
            await producer.stop()
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            got = await consumer.getmany(timeout_ms=200)
            for tp, msgs in got.items():
                for m in msgs:
                    try:
                        rec = json.loads(m.value or b"")
                    except ValueError:
                        continue
                    fate = fate_of(review, tp.topic, rec) if isinstance(rec, dict) else None
                    if fate is not None:
                        return fate
        return {"outcome": "pending"}
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> set[int]:
    await consumer._client.force_metadata_update()
    return consumer.partitions_for_topic(topic) or set()


def submit_review(bootstrap: str, review: dict[str, Any], wait: float = 10.0) -> dict[str, Any]:
    """Publish `review`; its fate as `console.review.fate_of` reads it, or `{"outcome": "pending"}`
    if the monitor said nothing within `wait` seconds."""
    return asyncio.run(_submit(bootstrap, review, wait))
