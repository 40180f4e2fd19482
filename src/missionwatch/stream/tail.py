"""`missionwatch tail`: the out records the service published, read back from
`missionwatch.out` and `missionwatch.control` and merged into each mission's chain order.

The two topics interleave a mission's chain (a control signal's seq sits between strategy
receipts and escalations), and at-least-once delivery may publish a record twice. `ChainMerge`
puts each mission's records back in seq order, once each, printing a record as soon as every
earlier one of its mission has been printed: its output is what `missionwatch verify` accepts.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field

from .core import CONTROL, OUT

__all__ = ["ChainMerge", "tail"]


@dataclass
class ChainMerge:
    """Per mission, the next seq to emit and the records waiting for an earlier one."""

    mission: str | None = None
    """Only this mission (None: all)."""
    next_seq: dict[str, int] = field(default_factory=dict)
    waiting: dict[str, dict[int, bytes]] = field(default_factory=dict)
    after: dict[str, dict[int, bytes]] = field(default_factory=dict)
    """Checkpoints of a mission's log (no seq) waiting for the record they follow: by its seq."""
    checkpointed: dict[str, int] = field(default_factory=dict)
    """Per mission, the largest checkpoint emitted (a copy seen again is skipped)."""
    skipped: int = 0
    """Records seen again (a redelivery republishes byte-identical copies) or not JSON."""

    def add(self, value: bytes) -> list[bytes]:
        """Take one record off a topic; return the records now in chain order."""
        try:
            rec = json.loads(value)
            mission = str(rec["mission_id"])
            if "seq" not in rec:
                return self._checkpoint(mission, int(rec["tree_size"]), value)
            seq = int(rec["seq"])
        except (ValueError, KeyError, TypeError):
            self.skipped += 1
            return []
        if self.mission is not None and mission != self.mission:
            return []
        nxt = self.next_seq.setdefault(mission, 0)
        if seq < nxt or seq in self.waiting.get(mission, {}):
            self.skipped += 1
            return []
        self.waiting.setdefault(mission, {})[seq] = value
        return self._drain(mission)

    def _checkpoint(self, mission: str, size: int, value: bytes) -> list[bytes]:
        """A checkpoint of size N follows seq N - 1: at once if that is out, else when it comes."""
        if (self.mission is not None and mission != self.mission) or size <= self.checkpointed.get(mission, 0):
            return []
        if size <= self.next_seq.get(mission, 0):
            self.checkpointed[mission] = size
            return [value]
        self.after.setdefault(mission, {})[size - 1] = value
        return []

    def _drain(self, mission: str) -> list[bytes]:
        out = []
        waiting, after = self.waiting[mission], self.after.get(mission, {})
        while self.next_seq[mission] in waiting:
            seq = self.next_seq[mission]
            out.append(waiting.pop(seq))
            self.next_seq[mission] += 1
            if seq in after:
                self.checkpointed[mission] = seq + 1
                out.append(after.pop(seq))
        return out

    def gaps(self) -> dict[str, tuple[int, int]]:
        """Missions whose chain cannot go on: (the seq missing, the next seq the topics hold)."""
        return {m: (self.next_seq[m], min(w)) for m, w in sorted(self.waiting.items()) if w}

    def skip_gap(self, mission: str) -> list[bytes]:
        """Go on after a gap (records the topics no longer hold): from the next seq they do."""
        self.next_seq[mission] = min(self.waiting[mission])
        return self._drain(mission)


async def _read(bootstrap: str, merge: ChainMerge, emit: Callable[[bytes], None], follow: bool,
                idle: float) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                         auto_offset_reset="earliest")
    await c.start()
    try:
        await c._client.force_metadata_update()
        tps = [TopicPartition(t, p) for t in (OUT, CONTROL) for p in sorted(c.partitions_for_topic(t) or ())]
        c.assign(tps)
        await c.seek_to_beginning(*tps)
        ends = await c.end_offsets(tps)
        while True:
            got = await c.getmany(timeout_ms=int(idle * 1000), max_records=5000)
            for msgs in got.values():
                for m in msgs:
                    for rec in merge.add(m.value or b""):
                        emit(rec)
            if not follow and all([await c.position(tp) >= ends[tp] for tp in tps]):
                return
    finally:
        await c.stop()


def tail(bootstrap: str, emit: Callable[[bytes], None], *, mission: str | None = None, follow: bool = False,
         idle: float = 0.5) -> ChainMerge:
    """Print what the topics hold in chain order (and, with `follow`, what comes next, until
    interrupted); return the merge, whose `gaps()` name chains the topics could not complete."""
    merge = ChainMerge(mission)
    asyncio.run(_read(bootstrap, merge, emit, follow, idle))
    return merge
