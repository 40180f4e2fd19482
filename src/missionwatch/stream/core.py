"""What the streaming service does with a message, without Kafka: one core
`Monitor` per input partition, outputs routed to topics, rejections kept.

A partition's state is a function of its messages in offset order (the core reads
no clock), so it is rebuilt exactly by feeding the partition again from offset 0:
`catch_up` does that silently up to the consumer group's committed offset, and
everything after it is processed (and published) again. Out records are signed
deterministically (Ed25519), so a message processed twice publishes byte-identical
records with the same (mission_id, seq): at-least-once delivery, idempotent state.

A poison message never stops a partition: whatever fails on one message (the core, the
encoding of what it caused, a record too large to publish) becomes a rejection of that
message on `missionwatch.rejected` (code `internal_error` unless the core gave a better
one), is logged with its partition and offset, and the partition moves on. `process` and
`catch_up` never raise.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..admission import DEFAULT_LIMITS, excerpt
from ..codes import reject_reason
from ..console.history import Feed, History, MissionHistory
from ..core.views import MissionView
from ..monitor import Monitor
from ..records import SCHEMA_CONTROL, SCHEMA_ESCALATION, SCHEMA_STRATEGY, format_time
from ..records import TOPIC_CONTROL as CONTROL
from ..records import TOPIC_IN as IN
from ..records import TOPIC_OUT as OUT
from ..records import TOPIC_REJECTED as REJECTED
from ..store.live import Ledgers
from .checkpoint import Checkpoints, Due
from .outlog import OutLog

__all__ = ["CONTROL", "IN", "OUT", "REJECTED", "Publish", "StreamCore", "exception_text", "ledger_summary"]

log = logging.getLogger("missionwatch.stream")

MAX_PUBLISH_BYTES = 1_000_000
"""Faust's default producer `max_request_size`; a record (key and value) must fit in it."""
_RECORD_OVERHEAD = 512
"""Bytes a Kafka record batch adds around one record's key and value (headers, lengths)."""


def ledger_summary(monitor: Monitor, mission_id: str) -> dict[str, Any] | None:
    """What `GET /api/missions/{id}/ledger` answers for a mission of `monitor`, or None."""
    view = monitor.view(mission_id)
    if view is None:
        return None
    cells = [{**c, "bucket_start": format_time(c["bucket_start"])} for c in monitor.ledger_rows(mission_id)]
    return {"mission_id": mission_id, "actions": view.totals["actions"], "outcomes": view.totals["outcomes"],
            "duplicates": view.totals["duplicates"], "cells": cells, "totals": monitor.ledger_totals(mission_id)}


def _dump(rec: dict[str, Any]) -> bytes:
    try:
        return json.dumps(rec, ensure_ascii=False, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate: JSON's \u escapes carry it
        return json.dumps(rec, ensure_ascii=True, separators=(",", ":")).encode()


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
    internal_errors: int = 0
    """Messages the monitor failed on, live or during a catch-up (each also a rejection)."""
    last_internal_error: dict[str, Any] | None = None
    """The latest of those: partition, offset, reason, and whether it was live or a catch-up."""
    too_large: int = 0
    """Records too large to publish, replaced by a bounded rejection row."""

    def count(self, out: list[dict[str, Any]], rejected: list[Any]) -> None:
        """Count what one message caused: out records by kind, rejections by code."""
        for rec in out:
            if rec["schema"] == SCHEMA_CONTROL:
                self.controls += 1
            elif rec["schema"] == SCHEMA_ESCALATION:
                self.escalations += 1
            elif rec["schema"] == SCHEMA_STRATEGY:
                self.strategy_receipts += 1
        for r in rejected:
            self.rejected[r.code] += 1


def restore(checkpoints: Checkpoints | None, ledgers: Ledgers, partition: int,
            fresh: Monitor) -> tuple[Monitor, History, int]:
    """A partition's state: its checkpoint restored (the log then replayed after its offset),
    else `fresh` (the log replayed from 0), with the first offset to feed. A checkpoint ahead of
    the partition's live ledger is not used: the ledger would miss the rows in between."""
    got = checkpoints.load(partition, fresh) if checkpoints is not None else None
    if got is None:
        return fresh, History(), 0
    ledger = ledgers.committed(partition)
    if ledger is not None and ledger < got.offset:
        log.warning("partition %d: checkpoint at offset %d is ahead of the ledger's commit (%d); rebuilding "
                    "from the log", partition, got.offset, ledger)
        return fresh, History(), 0
    log.info("partition %d: restored from its checkpoint at offset %d", partition, got.offset)
    return got.monitor, got.history, got.offset + 1


def exception_text(exc: BaseException) -> str:
    """An exception as `Type: first line` (at most 200 characters of it), for a rejection reason."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class StreamCore:
    """Input partitions -> their `Monitor`s -> records to publish.

    A partition's life: `assign` (on every rebalance, with the full assignment) keeps the
    states of partitions still held and makes fresh ones for new partitions; `catch_up`
    feeds it the messages up to the group's committed offset that it has not seen (another
    worker processed them); `activate` lets `process` run; `revoke` stops it (the state is
    kept: if the partition comes back, only what others did meanwhile is fed again)."""

    def __init__(self, make_monitor: Callable[[], Monitor], *, max_publish_bytes: int = MAX_PUBLISH_BYTES,
                 outlog: OutLog | None = None, ledger: Path | None = None,
                 checkpoints: Checkpoints | None = None) -> None:
        self.make_monitor = make_monitor
        self.checkpoints = checkpoints
        """Where partition states are checkpointed (stream/checkpoint.py; None: nowhere)."""
        self.checkpointed: dict[int, int] = {}
        """Per partition, the offset its latest checkpoint covers."""
        self.outlog = outlog
        self.ledgers = Ledgers(ledger)
        """Per partition held here, its live ledger (store/live.py), kept under `ledger` (None: none)."""
        """Where the out records go on disk, per mission in seq order (None: nowhere)."""
        self.max_publish_bytes = max_publish_bytes
        """Largest record (key and value) the producer may send; a larger one is replaced."""
        self.partitions: dict[int, Monitor] = {}
        self.next_offset: dict[int, int] = {}
        self.active: set[int] = set()
        self.metrics = Metrics()
        self.histories: dict[int, History] = {}
        """Per partition, what the console remembers of its missions (fed what the monitor is)."""
        self.feed = Feed()
        """Live events: what the console pushes to open pages (catch-ups add none)."""

    def assign(self, partitions: Iterable[int]) -> dict[int, int]:
        """This worker's whole assignment; return, per partition, the first offset it has not
        seen (0 for a new one): a catch-up starts there."""
        held = set(partitions)
        for p in set(self.partitions) - held:
            self.ledgers.close(p)
            self.checkpointed.pop(p, None)
            self.partitions.pop(p)
            self.histories.pop(p)
            self.next_offset.pop(p)
        self.active &= held
        for p in held - set(self.partitions):
            self.partitions[p], self.histories[p], self.next_offset[p] = self._start(p)
        for p in sorted(held):
            self.ledgers.open(p, self.partitions[p])
        return {p: self.next_offset[p] for p in sorted(held)}

    def _start(self, partition: int) -> tuple[Monitor, History, int]:
        """A partition new to this worker: restored from its checkpoint, else fresh."""
        state = restore(self.checkpoints, self.ledgers, partition, self.make_monitor())
        if state[2] > 0:
            self.checkpointed[partition] = state[2] - 1
        return state

    def checkpoint_jobs(self) -> list[Due]:
        """A checkpoint due of each active partition that moved since its last one, its state as of
        now (written by a forked child: stream/dumper.py; `checkpointed` is set once it is in place)."""
        if self.checkpoints is None:
            return []
        return [Due(p, self.next_offset[p] - 1, self.partitions[p], self.histories[p]) for p in sorted(self.active)
                if self.next_offset[p] - 1 > self.checkpointed.get(p, -1)]

    def activate(self, partition: int) -> None:
        self.active.add(partition)

    def revoke(self, partition: int) -> None:
        """Stop processing a partition (another worker may own it now); its state is kept until
        the next `assign` shows whether it comes back, its live ledger committed and let go."""
        self.active.discard(partition)
        self.ledgers.close(partition)

    def catch_up(self, partition: int, messages: Iterable[tuple[int, bytes]]) -> int:
        """Feed already-processed messages (offset, value) without publishing; return how many.
        Never raises: a message the monitor fails on is counted, logged and passed; a partition
        no longer assigned here (a newer rebalance took it) is left alone."""
        m = self.partitions.get(partition)
        if m is None:
            return 0
        n = 0
        for offset, value in messages:
            if offset < self.next_offset[partition]:
                continue
            self.next_offset[partition] = offset + 1
            n += 1
            try:
                step = m.feed(value)
                self.histories[partition].take(step, value)  # old news: kept, not pushed to the feed
                if (led := self.ledgers.get(partition)) is not None:
                    led.take(offset, step, value)
                if self.outlog is not None:  # this worker's disk may lack what another one issued
                    for rec in step.out:
                        self.outlog.add(_dump(rec))
            except Exception as exc:  # the core never raises; this keeps the catch-up going if it did
                self._internal(partition, offset, reject_reason("internal_error", exception_text(exc)), "catch-up")
                continue
            for r in step.rejected:
                if r.code == "internal_error":
                    self._internal(partition, offset, r.reason, "catch-up")
        self.metrics.replayed += n
        self.flush_out()
        return n

    def flush_out(self) -> None:
        """Write the out records buffered since the last call to disk (the agent calls it once
        its step's records are published)."""
        if self.outlog is not None:
            try:
                self.outlog.flush()
            except OSError as exc:  # a full disk must not stop the monitor; the log says so
                log.error("writing out records to %s failed: %s", self.outlog.directory, exc)

    def process(self, partition: int, offset: int, value: bytes | None) -> list[Publish]:
        """One message of `missionwatch.in`; what to publish because of it. A message at an
        offset already processed (a redelivery after a crash or rebalance) is processed only
        if the partition's core has not seen it; a partition not active here is skipped.
        Never raises: what fails on the message becomes an `internal_error` rejection of it."""
        if partition not in self.active or offset < self.next_offset[partition]:
            return []
        self.next_offset[partition] = offset + 1
        t0 = time.perf_counter()
        self.metrics.messages_in += 1
        text = value or b""
        try:
            out = self._step(partition, offset, text)
        except Exception as exc:
            self.metrics.records_in += 1
            out = [self.internal_error(partition, offset, text, exception_text(exc))]
        self.metrics.latency_sum += time.perf_counter() - t0
        self.metrics.latency_count += 1
        return out

    def _step(self, partition: int, offset: int, text: bytes) -> list[Publish]:
        m = self.partitions[partition]
        step = m.feed(text)
        self.feed.add(self.histories[partition].take(step, text))
        if (led := self.ledgers.get(partition)) is not None:
            led.take(offset, step, text)
        out: list[Publish] = []
        for rec in step.out:
            topic = CONTROL if rec["schema"] == SCHEMA_CONTROL else OUT
            pub = Publish(topic, str(rec["mission_id"]).encode(), _dump(rec))
            if self.outlog is not None:  # on disk even when too large to publish: the file's chain stays whole
                self.outlog.add(pub.value)
            if self._fits(pub):
                out.append(pub)
            else:
                out.append(self.too_large(partition, offset, text, pub))
        for r in step.rejected:
            row: dict[str, Any] = {"topic": IN, "partition": partition, "offset": offset,
                                   **m.rejection_row(r, text)}
            pub = Publish(REJECTED, None, _dump(row))
            if not self._fits(pub):  # a large excerpt setting: keep the row, cut its excerpt
                pub = Publish(REJECTED, None, _dump({**row, "record": excerpt(str(row.get("record")), 256)}))
            out.append(pub)
            if r.code == "internal_error":
                self._internal(partition, offset, r.reason, "live")
        self.metrics.records_in += len(step.accepted) + len(step.rejected)
        self.metrics.count(step.out, step.rejected)
        return out

    def _fits(self, pub: Publish) -> bool:
        return len(pub.value) + len(pub.key or b"") + _RECORD_OVERHEAD <= self.max_publish_bytes

    def internal_error(self, partition: int, offset: int, message: bytes, detail: str) -> Publish:
        """The rejection of a message the monitor (or the shell around it) failed on: counted,
        logged with its partition and offset, with a bounded excerpt of the message."""
        reason = reject_reason("internal_error", detail)
        self.metrics.rejected["internal_error"] += 1
        self._internal(partition, offset, reason, "live")
        m = self.partitions.get(partition)
        chars = (m.limits if m is not None else DEFAULT_LIMITS).excerpt_chars
        row = {"topic": IN, "partition": partition, "offset": offset, "code": "internal_error",
               "reason": reason, "record": excerpt(message.rstrip(b"\r\n"), min(chars, 4096))}
        if (led := self.ledgers.get(partition)) is not None:
            led.reject(offset, row)
        return Publish(REJECTED, None, _dump(row))

    def too_large(self, partition: int, offset: int, message: bytes, pub: Publish, detail: str = "") -> Publish:
        """What to publish instead of `pub`, a record the producer or the broker refuses as too
        large: an `internal_error` rejection of the message that caused it, naming the record."""
        self.metrics.too_large += 1
        what = f"a record of {len(pub.value):,} bytes for {pub.topic}, too large to publish"
        return self.internal_error(partition, offset, message, f"{what}: {detail}" if detail else what)

    def _internal(self, partition: int, offset: int, reason: str, during: str) -> None:
        self.metrics.internal_errors += 1
        self.metrics.last_internal_error = {"partition": partition, "offset": offset, "reason": reason,
                                            "during": during}
        log.error("partition %d offset %d (%s): %s", partition, offset, during, reason)

    def _holding(self, mission_id: str) -> int | None:
        """The active partition whose monitor holds the mission, if any here does."""
        return next((p for p in self.active if mission_id in self.partitions[p].missions), None)

    def ledger(self, mission_id: str) -> dict[str, Any] | None:
        """A mission's ledger as this worker holds it (counts, the open cells in the long format
        of the analysts' `ledger` table, the whole-mission totals), or None."""
        p = self._holding(mission_id)
        return ledger_summary(self.partitions[p], mission_id) if p is not None else None

    def status(self, mission_id: str) -> dict[str, Any] | None:
        """CONTRACT 4's status answer for a mission held here, or None."""
        view = self.view(mission_id)
        return view.status() if view is not None else None

    def views(self) -> list[MissionView]:
        """The views of every mission held here, by mission_id."""
        out = [v for p in sorted(self.active) for mid in self.partitions[p].mission_ids()
               if (v := self.partitions[p].view(mid)) is not None]
        return sorted(out, key=lambda v: v.mission_id)

    def view(self, mission_id: str) -> MissionView | None:
        p = self._holding(mission_id)
        return self.partitions[p].view(mission_id) if p is not None else None

    def history(self, mission_id: str) -> MissionHistory | None:
        p = self._holding(mission_id)
        return self.histories[p].get(mission_id) if p is not None else None

    def ledger_rows(self, mission_id: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
        """A mission's open ledger cells and whole-mission totals (the `ledger` table's and the
        `ledger_totals` view's rows), or None for a mission not held here."""
        p = self._holding(mission_id)
        if p is None:
            return None
        m = self.partitions[p]
        return m.ledger_rows(mission_id), m.ledger_totals(mission_id)

    def review_outcome(self, review_id: str) -> dict[str, Any] | None:
        """Whether a review this worker processed was accepted, or why it was refused."""
        for p in self.active:
            found = self.histories[p].outcomes.get(review_id)
            if found is not None:
                return found
        return None
