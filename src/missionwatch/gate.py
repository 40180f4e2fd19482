"""The gateway's side of the stream: publish receipts, obey control signals.

`Gate` is what an authority gateway (or the demo's simulated one) runs beside its
policy checks:

- `send(record)` queues an in record (mission, action, outcome); the gate packs each
  mission's queued records into one `missionwatch/batch@1` envelope, signed with the
  gateway's key, at most every `linger` seconds (or sooner when `max_batch` records
  or `max_bytes` wait), keyed by mission_id so one mission stays on one partition.
- It follows `missionwatch.control` and `missionwatch.out`. Every record's hash and
  monitor signature is checked; records that fail are counted in `problems` and
  never obeyed. Each mission's chain is checked record by record (seq from 0,
  prev_hash naming the previous hash), across both topics.
- `is_paused(mission_id)` is what the gateway asks before letting an agent act. A
  pause applies as soon as an authentic control signal says so; a resume applies
  only once the chain up to it is verified; a mission whose chain breaks or forks
  stays paused (fail closed) until a person looks.

Gateways in other languages do the same with any Kafka client (README, "Gateway
integration").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from .records import SCHEMA_BATCH, SCHEMA_CONTROL
from .records import TOPIC_CONTROL as CONTROL
from .records import TOPIC_IN as IN
from .records import TOPIC_OUT as OUT
from .signing import Keyring, Signer
from .verify import Chains, check_out_record

__all__ = ["ControlState", "Gate", "GateError"]

log = logging.getLogger("missionwatch.gate")



class GateError(RuntimeError):
    """The gate cannot do what was asked; the message says why."""


@dataclass(frozen=True)
class ControlState:
    """The latest authentic control signal of a mission, and when this gate saw it."""

    mission_id: str
    state: str
    cause: str | None
    seq: int
    hash: str
    seen_at: float
    """time.monotonic() when the gate received it."""


@dataclass
class _Mission:
    control: ControlState | None = None
    pending_resume: dict[int, ControlState] = field(default_factory=dict)
    pending: dict[int, tuple[str, object]] = field(default_factory=dict)
    """Records ahead of the verified chain head: seq -> (hash, prev_hash)."""
    broken: str | None = None


class Gate:
    """Publish in records in signed batches; follow and verify control signals."""

    def __init__(self, bootstrap: str, monitor_keys: Keyring, *, signer: Signer | None = None,
                 linger: float = 0.02, max_batch: int = 500, max_bytes: int = 512_000,
                 on_control: Callable[[ControlState], None] | None = None,
                 on_record: Callable[[dict[str, Any]], None] | None = None) -> None:
        if not any(role == "monitor" for _, role in monitor_keys.keys.values()):
            raise GateError("the keyring has no monitor key: control signals could not be verified")
        self.bootstrap = bootstrap
        self.keys = monitor_keys
        self.signer = signer
        self.linger, self.max_batch, self.max_bytes = linger, max_batch, max_bytes
        self.on_control = on_control
        self.on_record = on_record
        """Called once per authentic out record (strategy receipt, escalation, control)."""
        self.missions: dict[str, _Mission] = {}
        self.chains = Chains()
        self.problems: list[str] = []
        self.sent = 0
        self._queue: dict[str, list[dict[str, Any]]] = {}
        self._queued_bytes: dict[str, int] = {}
        self._batch_prefix = uuid.uuid4().hex[:12]
        self._batches = 0
        self._changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._producer: Any = None
        self._consumer: Any = None

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> Gate:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        self._consumer = AIOKafkaConsumer(OUT, CONTROL, bootstrap_servers=self.bootstrap, group_id=None,
                                          auto_offset_reset="earliest", enable_auto_commit=False,
                                          fetch_max_wait_ms=20)
        try:
            await self._producer.start()
            await self._consumer.start()
        except Exception as exc:
            await self._close()
            raise GateError(f"cannot reach the broker at {self.bootstrap}: {exc}") from None
        self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._lingerer())]
        return self

    async def stop(self) -> None:
        """Flush what is queued, then stop following."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        if self._producer is not None:
            await self.flush()
        await self._close()

    async def _close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        self._producer = self._consumer = None

    async def __aenter__(self) -> Gate:
        return await self.start()

    async def __aexit__(self, t: type[BaseException] | None, v: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    # --- publishing ------------------------------------------------------------------------
    async def send(self, record: dict[str, Any]) -> None:
        """Queue one in record for its mission's next batch."""
        mission = record.get("mission_id")
        if not isinstance(mission, str) or not mission:
            raise GateError(f"a record needs a mission_id string to be routed; got {mission!r}")
        if self._producer is None:
            raise GateError("the gate is not started (use `async with Gate(...)` or await start())")
        queue = self._queue.setdefault(mission, [])
        queue.append(record)
        size = self._queued_bytes[mission] = self._queued_bytes.get(mission, 0) + len(json.dumps(record))
        if len(queue) >= self.max_batch or size >= self.max_bytes:
            await self._flush_mission(mission)

    async def flush(self) -> None:
        """Publish every queued record now, and wait until the broker has them."""
        for mission in list(self._queue):
            await self._flush_mission(mission)

    async def _flush_mission(self, mission: str) -> None:
        items = self._queue.pop(mission, [])
        self._queued_bytes.pop(mission, None)
        if not items:
            return
        self._batches += 1
        envelope: dict[str, Any] = {"schema": SCHEMA_BATCH, "batch_id": f"{self._batch_prefix}-{self._batches}",
                                    "items": items}
        if self.signer is not None:
            envelope = self.signer.sign(envelope)
        value = json.dumps(envelope, ensure_ascii=False, separators=(",", ":")).encode()
        try:
            await self._producer.send_and_wait(IN, value=value, key=mission.encode())
        except BaseException:
            # not published: the records go back to the front of the queue, in order
            self._queue[mission] = items + self._queue.get(mission, [])
            self._queued_bytes[mission] = self._queued_bytes.get(mission, 0) + len(value)
            raise
        self.sent += len(items)

    async def _lingerer(self) -> None:
        while True:
            await asyncio.sleep(self.linger)
            try:
                await self.flush()
            except Exception as exc:  # the broker went away: keep the records, say why, retry
                log.warning("publishing to %s failed (%s); retrying", self.bootstrap, exc)

    # --- following control -----------------------------------------------------------------
    def state(self, mission_id: str) -> ControlState | None:
        m = self.missions.get(mission_id)
        return m.control if m else None

    def is_paused(self, mission_id: str) -> bool:
        """Must the gateway hold this mission's agent? True when its latest authentic control
        signal says paused or terminated, or when its chain is broken."""
        m = self.missions.get(mission_id)
        if m is None:
            return False
        return m.broken is not None or (m.control is not None and m.control.state != "running")

    def broken(self, mission_id: str) -> str | None:
        """Why the mission's chain cannot be trusted, or None."""
        m = self.missions.get(mission_id)
        return m.broken if m else None

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (up to `timeout` s) until `predicate()` holds after a control or chain change."""
        deadline = time.monotonic() + timeout
        while True:
            self._changed.clear()
            if predicate():
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    async def _follow(self) -> None:
        while True:
            try:
                got = await self._consumer.getmany(timeout_ms=200)
            except Exception as exc:  # the broker went away: say why, keep trying
                log.warning("following %s failed (%s); retrying", self.bootstrap, exc)
                await asyncio.sleep(0.5)
                continue
            for msgs in got.values():
                for msg in msgs:
                    self.receive(msg.value)

    def receive(self, value: bytes | None) -> None:
        """One message of missionwatch.out or .control (public so a gateway with its own
        consumer can feed it)."""
        try:
            rec = json.loads(value or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._problem(f"a message that is not JSON ({exc})")
            return
        checked = check_out_record(rec, self.keys)
        if isinstance(checked, str):
            self._problem(checked)  # never obeyed: a forged or edited signal changes nothing
            return
        mission, seq, h = checked
        m = self.missions.setdefault(mission, _Mission())
        known = m.pending.get(seq)
        head = self.chains.heads.get(mission)
        if (head is not None and seq <= head[0]) or known is not None:
            if known is not None and known[0] != h:
                self._break(m, f"mission {mission!r} seq {seq}: two different records (a forked chain)")
            return  # a redelivery of a record already seen
        m.pending[seq] = (h, rec.get("prev_hash"))
        if self.on_record is not None:
            self.on_record(rec)
        if rec["schema"] == SCHEMA_CONTROL:
            state = ControlState(mission, str(rec.get("state")), rec.get("cause"), seq, h, time.monotonic())
            if state.state == "running":
                m.pending_resume[seq] = state  # a resume waits for the chain to reach it
            else:
                self._apply(m, state)
        self._advance(mission, m)
        self._changed.set()

    def _advance(self, mission: str, m: _Mission) -> None:
        while m.broken is None:
            head = self.chains.heads.get(mission)
            nxt = 0 if head is None else head[0] + 1
            if nxt not in m.pending:
                return
            h, prev = m.pending.pop(nxt)
            error = self.chains.extend(mission, nxt, h, prev)
            if error is not None:
                self._break(m, error)
                return
            resume = m.pending_resume.pop(nxt, None)
            if resume is not None:
                self._apply(m, resume)

    def _apply(self, m: _Mission, state: ControlState) -> None:
        if m.control is None or state.seq > m.control.seq:
            m.control = state
            if self.on_control is not None:
                self.on_control(state)

    def _break(self, m: _Mission, why: str) -> None:
        m.broken = why
        self._problem(why + "; the mission is held until a person looks")

    def _problem(self, why: str) -> None:
        log.warning("control stream: %s", why)
        self.problems.append(why)
