"""What the streaming service does with a message, without Kafka: one core
`Monitor` per input partition, outputs routed to topics, rejections kept.

A partition's state is a function of its messages in offset order (the core reads
no clock), so it is rebuilt exactly by feeding the partition again from offset 0:
`catch_up` does that silently up to the consumer group's committed offset, and
everything after it is processed (and published) again. Out records are signed
deterministically (Ed25519), so a message processed twice publishes byte-identical
records with the same (mission_id, seq): at-least-once delivery, idempotent state.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..monitor import Monitor
from ..records import SCHEMA_CONTROL, SCHEMA_ESCALATION
from ..records import TOPIC_CONTROL as CONTROL
from ..records import TOPIC_IN as IN
from ..records import TOPIC_OUT as OUT
from ..records import TOPIC_REJECTED as REJECTED

__all__ = ["CONTROL", "IN", "OUT", "REJECTED", "Publish", "StreamCore", "ledger_summary"]



def ledger_summary(ms: Any) -> dict[str, Any]:
    """What `GET /api/missions/{id}/ledger` answers for one `MissionState`."""
    return {"mission_id": ms.mission_id, "actions": ms.n_actions, "outcomes": ms.n_outcomes,
            "duplicates": ms.duplicates, "cells": ms.ledger.rows(ms.mission_id)}


def _dump(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True)
class Publish:
    topic: str
    key: bytes | None
    value: bytes


@dataclass
class Metrics:
    """What /metrics reports; counted by the shell, not the core."""

    messages_in: int = 0
    records_in: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    escalations: int = 0
    controls: int = 0
    strategy_receipts: int = 0
    latency_sum: float = 0.0
    latency_count: int = 0
    replayed: int = 0


class StreamCore:
    """Input partitions -> their `Monitor`s -> records to publish.

    A partition's life: `assign` (on every rebalance, with the full assignment) keeps the
    states of partitions still held and makes fresh ones for new partitions; `catch_up`
    feeds it the messages up to the group's committed offset that it has not seen (another
    worker processed them); `activate` lets `process` run; `revoke` stops it (the state is
    kept: if the partition comes back, only what others did meanwhile is fed again)."""

    def __init__(self, make_monitor: Callable[[], Monitor]) -> None:
        self.make_monitor = make_monitor
        self.partitions: dict[int, Monitor] = {}
        self.next_offset: dict[int, int] = {}
        self.active: set[int] = set()
        self.metrics = Metrics()

    def assign(self, partitions: Iterable[int]) -> dict[int, int]:
        """This worker's whole assignment; return, per partition, the first offset it has not
        seen (0 for a new one): a catch-up starts there."""
        held = set(partitions)
        for p in set(self.partitions) - held:
            self.partitions.pop(p)
            self.next_offset.pop(p)
        self.active &= held
        for p in held - set(self.partitions):
            self.partitions[p] = self.make_monitor()
            self.next_offset[p] = 0
        return {p: self.next_offset[p] for p in sorted(held)}

    def activate(self, partition: int) -> None:
        self.active.add(partition)

    def revoke(self, partition: int) -> None:
        """Stop processing a partition (another worker may own it now); its state is kept until
        the next `assign` shows whether it comes back."""
        self.active.discard(partition)

    def catch_up(self, partition: int, messages: Iterable[tuple[int, bytes]]) -> int:
        """Feed already-processed messages (offset, value) without publishing; return how many."""
        m = self.partitions[partition]
        n = 0
        for offset, value in messages:
            if offset < self.next_offset[partition]:
                continue
            m.feed(value)
            self.next_offset[partition] = offset + 1
            n += 1
        self.metrics.replayed += n
        return n

    def process(self, partition: int, offset: int, value: bytes | None) -> list[Publish]:
        """One message of `missionwatch.in`; what to publish because of it. A message at an
        offset already processed (a redelivery after a crash or rebalance) is processed only
        if the partition's core has not seen it; a partition not active here is skipped."""
        if partition not in self.active or offset < self.next_offset[partition]:
            return []
        m = self.partitions[partition]
        self.next_offset[partition] = offset + 1
        t0 = time.perf_counter()
        self.metrics.messages_in += 1
        text = value or b""
        step = m.feed(text)
        self.metrics.records_in += len(step.accepted) + len(step.rejected)
        out: list[Publish] = []
        for rec in step.out:
            if rec["schema"] == SCHEMA_CONTROL:
                self.metrics.controls += 1
            elif rec["schema"] == SCHEMA_ESCALATION:
                self.metrics.escalations += 1
            else:
                self.metrics.strategy_receipts += 1
            topic = CONTROL if rec["schema"] == SCHEMA_CONTROL else OUT
            out.append(Publish(topic, str(rec["mission_id"]).encode(), _dump(rec)))
        for r in step.rejected:
            self.metrics.rejected[r.code] += 1
            row: dict[str, Any] = {"topic": IN, "partition": partition, "offset": offset,
                                   **m.rejection_row(r, text)}
            out.append(Publish(REJECTED, None, _dump(row)))
        self.metrics.latency_sum += time.perf_counter() - t0
        self.metrics.latency_count += 1
        return out

    def ledger(self, mission_id: str) -> dict[str, Any] | None:
        """A mission's ledger as this worker holds it (counts, and the long-format cells of
        the analysts' `ledger` table), or None."""
        for p in self.active:
            ms = self.partitions[p].missions.get(mission_id)
            if ms is not None:
                return ledger_summary(ms)
        return None

    def status(self, mission_id: str) -> dict[str, Any] | None:
        """CONTRACT 4's status answer for a mission held here, or None."""
        for p in self.active:
            ms = self.partitions[p].missions.get(mission_id)
            if ms is not None:
                return {"mission_id": mission_id, "state": ms.state, "cause": ms.cause,
                        "seq": ms.seq - 1 if ms.seq else None}
        return None
