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
- The transparency log (missionwatch.transparency): every checkpoint record is checked
  against the chain the gate verified and against the mission's previous checkpoint
  (consistency proof). Once a mission has shown a checkpoint, a resume applies only when
  a checkpoint that includes it (inclusion proof) holds; a checkpoint inconsistent with
  an earlier one, or with the records, holds the mission (fail closed).

Publishing survives a broker that goes away. A record stays queued, in order, until the
broker has acknowledged the batch that carries it. `flush()` (and `send()` when a batch is
full) retries transient errors (the connection-level and retriable Kafka errors, request
timeouts, NotLeader, and UnknownError, which a restarted broker answers) after an
exponential, capped, jittered wait, until the broker has acknowledged nothing for
`retry_deadline` seconds. A batch already handed to the producer is never abandoned: a
later flush waits for that same batch instead of sending its records again, so an outage
adds no duplicates of its own. A batch the broker refuses as too large is split; a single
record too large for the broker is set aside in `refused` (never retried). Any other error
(authorization, an unknown topic name, an unsupported broker) is not retried: the records
stay queued and the background publisher holds (`halted`) until `flush()` is called again.

The exception tree is one class:

    GateError (RuntimeError)    anything the gate cannot do; the message says why.
        .queued                 records still queued when a flush gave up (0 otherwise)
        .fatal                  True when retrying cannot help (see `error_kind`)

Gateways in other languages do the same with any Kafka client (README, "Gateway
integration").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from .records import SCHEMA_BATCH, SCHEMA_CHECKPOINT, SCHEMA_CONTROL
from .records import TOPIC_CONTROL as CONTROL
from .records import TOPIC_IN as IN
from .records import TOPIC_OUT as OUT
from .signing import Keyring, Signer
from .transparency import Logs, TreeHead, check_checkpoint
from .verify import Chains, check_out_record

__all__ = ["ControlState", "Gate", "GateError", "Publish", "backoff_delay", "error_kind"]

log = logging.getLogger("missionwatch.gate")

Publish = Callable[[str, bytes, bytes], Awaitable[object]]
"""The gate's one I/O seam: `publish(topic, key, value)` returns once the broker has acknowledged
the message and raises otherwise. By default an aiokafka producer (acks=all); tests pass a plain
async function."""

ErrorKind = Literal["transient", "too_large", "fatal"]


class GateError(RuntimeError):
    """The gate cannot do what was asked; the message says why."""

    def __init__(self, message: str, *, queued: int = 0, fatal: bool = False) -> None:
        super().__init__(message)
        self.queued = queued
        """Records still queued (in order, to be sent by a later flush) when a flush gave up."""
        self.fatal = fatal
        """True when retrying cannot help: a person has to change something first."""


def error_kind(error: BaseException) -> ErrorKind:
    """How the gate treats a failed publish. "transient": retried after a wait (connection
    errors, timeouts, every aiokafka error marked retriable such as NotLeaderForPartition,
    and UnknownError, BrokerNotAvailable and KafkaUnavailable, which a restarting broker
    answers). "too_large": the batch is split; a single record is refused. "fatal": anything
    else (authorization, an invalid topic, an unsupported broker, a bug): never retried."""
    from aiokafka import errors as ke

    if isinstance(error, ke.MessageSizeTooLargeError | ke.RecordListTooLargeError | ke.RecordTooLargeError):
        return "too_large"
    if isinstance(error, OSError | TimeoutError | asyncio.CancelledError):
        return "transient"  # connection refused or reset; a try cut short when the gate stopped
    transient = (ke.UnknownError, ke.KafkaTimeoutError, ke.KafkaUnavailableError, ke.BrokerNotAvailableError,
                 ke.ReplicaNotAvailableError)
    if isinstance(error, ke.KafkaError) and (error.retriable or isinstance(error, transient)):
        return "transient"
    return "fatal"


def backoff_delay(failures: int, base: float, cap: float, rng: random.Random) -> float:
    """Seconds to wait after `failures` + 1 failed tries in a row: min(cap, base * 2**failures),
    times a factor drawn from [0.5, 1) so that many gateways do not retry in step."""
    return min(cap, base * 2.0 ** min(failures, 64)) * (0.5 + rng.random() / 2)


def _compact(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass
class _Flight:
    """A batch handed to `publish`: the first `count` records of its mission's queue."""

    count: int
    task: asyncio.Future[object]


class _Late(Exception):
    """The deadline passed; `error` is the last failure, or None when a batch is still out."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


async def _stop_client(client: Any) -> None:
    """Stop an aiokafka client. Its stop() can raise the CancelledError of a task it cancelled
    itself (aio-libs/aiokafka#647: the consumer's fetcher awaits the fetch requests it cancels,
    seen here after a broker restart): that one is dropped; a cancellation of this task is not."""
    try:
        await client.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception as exc:  # the broker is gone: there is nothing left to close cleanly
        log.debug("closing %s: %r", type(client).__name__, exc)


def _retrieve(task: asyncio.Future[object]) -> None:
    if not task.cancelled():
        task.exception()  # looked at by `_outcome`; this keeps asyncio from warning when it is not


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
    issued_at: str | None = None
    """The signal's event time (a review of its cause may not be dated earlier)."""


@dataclass
class _Mission:
    control: ControlState | None = None
    pending_resume: dict[int, ControlState] = field(default_factory=dict)
    checkpoints: dict[int, TreeHead] = field(default_factory=dict)
    """Checkpoints not yet checked (ahead of the verified chain), by tree size."""
    unproven: dict[int, ControlState] = field(default_factory=dict)
    """Resumes the chain reached, waiting for a checkpoint that includes them."""
    pending: dict[int, tuple[str, object]] = field(default_factory=dict)
    """Records ahead of the verified chain head: seq -> (hash, prev_hash)."""
    broken: str | None = None


class _Publisher:
    """Each mission's queue of in records, published in signed batches: in order, retried after
    transient errors, split when too large, a record too large alone set aside (what `Gate.send`
    and `Gate.flush` do; the module docstring tells the rules)."""

    def __init__(self, bootstrap: str, *, signer: Signer | None, max_batch: int, max_bytes: int,
                 retry_deadline: float, retry_backoff: float, retry_backoff_max: float,
                 publish: Publish | None, rng: random.Random, clock: Callable[[], float],
                 sleep: Callable[[float], Awaitable[None]]) -> None:
        self.bootstrap = bootstrap
        self.signer = signer
        self.max_batch, self.max_bytes = max_batch, max_bytes
        self.retry_deadline = retry_deadline
        """A flush gives up when the broker has acknowledged nothing for this many seconds."""
        self.retry_backoff, self.retry_backoff_max = retry_backoff, retry_backoff_max
        """The first wait before a retry, and the longest; each failure in a row doubles it."""
        self.publish = publish
        """Where batches go; None while the gate is not started."""
        self.rng = rng
        """The jitter of the waits; pass a seeded one for reproducible waits."""
        self.clock, self.sleep = clock, sleep
        self.sent = 0
        """Records the broker has acknowledged."""
        self.retries = 0
        """Transient failures retried so far."""
        self.refused: list[tuple[dict[str, Any], str]] = []
        """Records the broker will never take (each alone too large), with the reason; not retried."""
        self.halted: str | None = None
        """Why background publishing holds after an error retrying cannot fix; cleared by a
        flush that succeeds."""
        self._queue: dict[str, list[tuple[dict[str, Any], int]]] = {}
        """mission -> [(record, its size in bytes)], oldest first, until acknowledged."""
        self._queued_bytes: dict[str, int] = {}
        self._flights: dict[str, _Flight] = {}
        self._lock = asyncio.Lock()
        self._batch_prefix = uuid.uuid4().hex[:12]
        self._batches = 0

    @property
    def queued(self) -> int:
        return sum(len(q) for q in self._queue.values())

    @property
    def in_flight(self) -> int:
        return sum(f.count for f in self._flights.values() if not f.task.done())

    def cancel_flights(self) -> None:
        for flight in self._flights.values():
            flight.task.cancel()

    def detach(self, publish: Publish | None) -> None:
        """Forget the batches handed to the old `publish`; use this one from now on."""
        self._flights = {}
        self.publish = publish

    async def send(self, record: dict[str, Any]) -> None:
        mission = record.get("mission_id")
        if not isinstance(mission, str) or not mission:
            raise GateError(f"a record needs a mission_id string to be routed; got {mission!r}")
        if self.publish is None:
            raise GateError("the gate is not started (use `async with Gate(...)` or await start())")
        size = len(_compact(record))
        queue = self._queue.setdefault(mission, [])
        queue.append((record, size))
        total = self._queued_bytes[mission] = self._queued_bytes.get(mission, 0) + size
        if len(queue) >= self.max_batch or total >= self.max_bytes:
            await self.flush([mission])

    async def flush(self, missions: Iterable[str] | None = None, retry_deadline: float | None = None) -> None:
        """Publish what is queued now for `missions` (None: every mission with records queued now)."""
        missions = list(self._queue) if missions is None else missions
        refused = 0
        async with self._lock:  # one publisher at a time keeps each mission's batches in order
            window = self.retry_deadline if retry_deadline is None else retry_deadline
            try:
                for mission in missions:
                    refused += await self._drain(mission, window)
            except GateError as exc:
                if exc.fatal:
                    self.halted = str(exc)
                raise
            self.halted = None
        if refused:
            raise GateError(f"{refused} record(s) alone exceed what the broker accepts: set aside in "
                            f"gate.refused, not retried; the rest were published", queued=self.queued)

    async def _drain(self, mission: str, window: float) -> int:
        """Publish the records queued for `mission` now, in order, a batch at a time; return how
        many were refused as too large."""
        goal, done, failures, refused = len(self._queue.get(mission, [])), 0, 0, 0
        limit = self.max_batch
        deadline = self.clock() + window
        try:
            while done < goal and self._queue.get(mission):
                flight = self._flights.get(mission) or self._launch(mission, limit)
                error = await self._outcome(mission, flight, deadline)
                if error is None:
                    self._acked(mission, flight.count)
                    done, failures, deadline = done + flight.count, 0, self.clock() + window
                    continue
                kind = error_kind(error)
                if kind == "fatal":
                    raise GateError(f"publishing to {self.bootstrap} failed with {error!r}, which retrying "
                                    f"cannot fix; {self.queued} records remain queued", queued=self.queued,
                                    fatal=True) from error
                if kind == "too_large" and flight.count > 1:
                    limit = flight.count // 2  # fewer records per envelope, at once
                elif kind == "too_large":
                    self._refuse(mission, error)
                    done, refused = done + 1, refused + 1
                else:
                    await self._back_off(failures, deadline, error)
                    failures += 1
        except _Late as late:
            last = f"last error: {late.error!r}" if late.error is not None else "a batch is still in flight"
            raise GateError(f"the broker at {self.bootstrap} acknowledged nothing for {window:g} s ({last}); "
                            f"{self.queued} records remain queued, in order, for a later flush",
                            queued=self.queued) from None
        return refused

    def _launch(self, mission: str, limit: int) -> _Flight:
        """Hand the oldest records of `mission` (at most `limit`, and `max_bytes` unless one record
        alone is larger) to `publish` as one signed envelope."""
        queue = self._queue[mission]
        count = size = 0
        for _, n in queue[:limit]:
            if count and size + n > self.max_bytes:
                break
            count, size = count + 1, size + n
        self._batches += 1
        envelope: dict[str, Any] = {"schema": SCHEMA_BATCH, "batch_id": f"{self._batch_prefix}-{self._batches}",
                                    "items": [record for record, _ in queue[:count]]}
        if self.signer is not None:
            envelope = self.signer.sign(envelope)
        if self.publish is None:
            raise GateError(f"the gate is stopped with {self.queued} records queued; start it to send them",
                            queued=self.queued)
        task = asyncio.ensure_future(self.publish(IN, mission.encode(), _compact(envelope)))
        task.add_done_callback(_retrieve)
        flight = self._flights[mission] = _Flight(count, task)
        return flight

    async def _outcome(self, mission: str, flight: _Flight, deadline: float) -> BaseException | None:
        """Wait for `flight` until `deadline`: its error, or None once acknowledged. A flight still
        out at the deadline stays in `_flights`, and the next flush waits for it again."""
        if not flight.task.done():
            await asyncio.sleep(0)  # a publish that answers at once does so before a timer starts
        if not flight.task.done():
            left = deadline - self.clock()
            if left > 0:
                timer: asyncio.Future[Any] = asyncio.ensure_future(self.sleep(left))
                try:
                    await asyncio.wait((flight.task, timer), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    timer.cancel()
            if not flight.task.done():
                raise _Late(None)
        del self._flights[mission]
        return asyncio.CancelledError() if flight.task.cancelled() else flight.task.exception()

    async def _back_off(self, failures: int, deadline: float, error: BaseException) -> None:
        delay = backoff_delay(failures, self.retry_backoff, self.retry_backoff_max, self.rng)
        if self.clock() + delay >= deadline:  # no new try could start in time
            raise _Late(error)
        self.retries += 1
        log.warning("publishing to %s failed (%r); retrying in %.2f s", self.bootstrap, error, delay)
        await self.sleep(delay)

    def _acked(self, mission: str, count: int) -> None:
        queue = self._queue[mission]
        self._queued_bytes[mission] -= sum(n for _, n in queue[:count])
        del queue[:count]
        if not queue:
            del self._queue[mission], self._queued_bytes[mission]
        self.sent += count

    def _refuse(self, mission: str, error: BaseException) -> None:
        record, size = self._queue[mission].pop(0)
        self._queued_bytes[mission] -= size
        if not self._queue[mission]:
            del self._queue[mission], self._queued_bytes[mission]
        why = f"{size} bytes, refused as too large: {error!r}"
        log.error("mission %r: a record of %s; set aside in gate.refused", mission, why)
        self.refused.append((record, why))


class _Follower:
    """What the control and out topics say, checked: each record's hash and monitor signature,
    each mission's chain record by record across both topics, and the control state each mission
    is in (the rules are in the module docstring)."""

    def __init__(self, keys: Keyring, on_control: Callable[[ControlState], None] | None,
                 on_record: Callable[[dict[str, Any]], None] | None) -> None:
        if not any(role == "monitor" for _, role in keys.keys.values()):
            raise GateError("the keyring has no monitor key: control signals could not be verified")
        self.keys = keys
        self.on_control = on_control
        self.on_record = on_record
        """Called once per authentic out record (strategy receipt, escalation, control)."""
        self.missions: dict[str, _Mission] = {}
        self.chains = Chains()
        self.logs = Logs()
        self.problems: list[str] = []
        self._changed = asyncio.Event()

    def state(self, mission_id: str) -> ControlState | None:
        m = self.missions.get(mission_id)
        return m.control if m else None

    def is_paused(self, mission_id: str) -> bool:
        m = self.missions.get(mission_id)
        if m is None:
            return False
        return m.broken is not None or (m.control is not None and m.control.state != "running")

    def broken(self, mission_id: str) -> str | None:
        m = self.missions.get(mission_id)
        return m.broken if m else None

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
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

    def receive(self, value: bytes | None) -> None:
        try:
            rec = json.loads(value or b"")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._problem(f"a message that is not JSON ({exc})")
            return
        if isinstance(rec, dict) and rec.get("schema") == SCHEMA_CHECKPOINT:
            self._checkpoint(rec)
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
            issued = rec.get("issued_at")
            state = ControlState(mission, str(rec.get("state")), rec.get("cause"), seq, h, time.monotonic(),
                                 issued if isinstance(issued, str) else None)
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
            self.logs.record(mission, h)
            resume = m.pending_resume.pop(nxt, None)
            if resume is not None and self._logged(mission, m):
                m.unproven[nxt] = resume  # the next checkpoint must include it
            elif resume is not None:
                self._apply(m, resume)
            self._settle(mission, m)

    def _logged(self, mission: str, m: _Mission) -> bool:
        """Whether the mission's log has shown checkpoints (a monitor that issues none: no wait)."""
        log_ = self.logs.missions.get(mission)
        return bool(m.checkpoints) or (log_ is not None and log_.head is not None)

    def _checkpoint(self, rec: dict[str, Any]) -> None:
        head = check_checkpoint(rec, self.keys)
        if isinstance(head, str):
            self._problem(head)  # never trusted
            return
        m = self.missions.setdefault(head.mission_id, _Mission())
        log_ = self.logs.missions.get(head.mission_id)
        if log_ is not None and log_.head is not None and head.size <= log_.head.size:
            if head.size == log_.head.size and head.root != log_.head.root:
                self._break(m, f"mission {head.mission_id!r}: two checkpoints of size {head.size} with different "
                            "roots (a forked log)")
            return  # a redelivery, or one an earlier checkpoint already covers
        m.checkpoints[head.size] = head
        self._settle(head.mission_id, m)
        self._changed.set()

    def _settle(self, mission: str, m: _Mission) -> None:
        """Check the checkpoints the verified chain reached, in order; apply the resumes they include."""
        while m.broken is None and m.checkpoints:
            size = min(m.checkpoints)
            log_ = self.logs.missions.get(mission)
            if log_ is None or log_.tree.size < size:
                return
            error = self.logs.checkpoint(m.checkpoints.pop(size))
            if error is not None:
                self._break(m, error)
                return
            for seq in sorted(s for s in m.unproven if s < size):
                self._apply(m, m.unproven.pop(seq))

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


class Gate:
    """Publish in records in signed batches; follow and verify control signals."""

    def __init__(self, bootstrap: str, monitor_keys: Keyring, *, signer: Signer | None = None,
                 linger: float = 0.02, max_batch: int = 500, max_bytes: int = 512_000,
                 retry_deadline: float = 60.0, retry_backoff: float = 0.1, retry_backoff_max: float = 5.0,
                 request_timeout: float = 30.0,
                 on_control: Callable[[ControlState], None] | None = None,
                 on_record: Callable[[dict[str, Any]], None] | None = None,
                 publish: Publish | None = None, rng: random.Random | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self._follower = _Follower(monitor_keys, on_control, on_record)
        self._publisher = _Publisher(bootstrap, signer=signer, max_batch=max_batch, max_bytes=max_bytes,
                                     retry_deadline=retry_deadline, retry_backoff=retry_backoff,
                                     retry_backoff_max=retry_backoff_max, publish=publish,
                                     rng=rng or random.Random(), clock=clock, sleep=sleep)
        self.bootstrap = bootstrap
        self.linger = linger
        self.request_timeout = request_timeout
        """How long the producer keeps one batch before it counts as failed (and is retried)."""
        self.sleep = sleep
        self._tasks: list[asyncio.Task[None]] = []
        self._injected = publish
        self._producer: Any = None
        self._consumer: Any = None

    # --- lifecycle -------------------------------------------------------------------------
    async def start(self) -> Gate:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

        if self._injected is None:
            self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0,
                                              request_timeout_ms=int(self.request_timeout * 1000))
        self._consumer = AIOKafkaConsumer(OUT, CONTROL, bootstrap_servers=self.bootstrap, group_id=None,
                                          auto_offset_reset="earliest", enable_auto_commit=False,
                                          fetch_max_wait_ms=20)
        try:
            if self._producer is not None:
                await self._producer.start()
            await self._consumer.start()
        except Exception as exc:
            await self._close()
            raise GateError(f"cannot reach the broker at {self.bootstrap}: {exc}") from None
        if self._producer is not None:
            self._publisher.publish = self._kafka_publish
        self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._lingerer())]
        return self

    async def stop(self) -> None:
        """Flush what is queued (retrying as `flush` does), then stop following and close. Raises
        GateError, after closing, when records could not be published: they go with the gate."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self._tasks = []
        try:
            if self._publisher.publish is not None:
                await self.flush()
        finally:
            await self._close()

    async def _close(self) -> None:
        self._publisher.cancel_flights()
        for client in (self._consumer, self._producer):
            if client is not None:
                await _stop_client(client)
        self._producer = self._consumer = None
        self._publisher.detach(self._injected)

    async def __aenter__(self) -> Gate:
        return await self.start()

    async def __aexit__(self, t: type[BaseException] | None, v: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.stop()

    async def _kafka_publish(self, topic: str, key: bytes, value: bytes) -> None:
        await self._producer.send_and_wait(topic, value=value, key=key)

    # --- publishing ------------------------------------------------------------------------
    @property
    def queued(self) -> int:
        """Records not yet acknowledged by the broker (those in flight included)."""
        return self._publisher.queued

    @property
    def in_flight(self) -> int:
        """Queued records in a batch handed to the producer whose fate is not known yet."""
        return self._publisher.in_flight

    @property
    def sent(self) -> int:
        """Records the broker has acknowledged."""
        return self._publisher.sent

    @property
    def retries(self) -> int:
        """Transient failures retried so far."""
        return self._publisher.retries

    @property
    def refused(self) -> list[tuple[dict[str, Any], str]]:
        """Records the broker will never take (each alone too large), with the reason; not retried."""
        return self._publisher.refused

    @property
    def halted(self) -> str | None:
        """Why background publishing holds after an error retrying cannot fix; cleared by a
        flush that succeeds."""
        return self._publisher.halted

    async def send(self, record: dict[str, Any]) -> None:
        """Queue one in record for its mission's next batch. When the mission's queue is full
        (`max_batch` records or `max_bytes`), wait until it is published; that raises GateError
        as `flush` does, and the record stays queued."""
        await self._publisher.send(record)

    async def flush(self, *, retry_deadline: float | None = None) -> None:
        """Publish every record queued now and return once the broker has acknowledged them.
        Transient errors are retried until the broker has acknowledged nothing for
        `retry_deadline` seconds (default: the gate's setting); then GateError says how many
        records remain queued. They stay queued, in order, and a later flush sends them."""
        await self._publisher.flush(None, retry_deadline)

    async def _lingerer(self) -> None:
        while True:
            await self.sleep(self.linger)
            if self.halted is not None or not self.queued:
                continue  # halted: an error retrying cannot fix; the next explicit flush tries again
            try:
                await self.flush()
            except GateError as exc:  # the records stay queued; say why, try again next time
                log.warning("%s", exc)

    # --- following control -----------------------------------------------------------------
    @property
    def keys(self) -> Keyring:
        """The keyring whose monitor keys control signals are checked against."""
        return self._follower.keys

    @property
    def chains(self) -> Chains:
        """Each mission's verified chain head."""
        return self._follower.chains

    @property
    def problems(self) -> list[str]:
        """Each record not obeyed (forged, edited, not JSON) and each broken chain, in a sentence."""
        return self._follower.problems

    def state(self, mission_id: str) -> ControlState | None:
        """The mission's latest authentic control signal that applies, or None."""
        return self._follower.state(mission_id)

    def is_paused(self, mission_id: str) -> bool:
        """Must the gateway hold this mission's agent? True when its latest authentic control
        signal says paused or terminated, or when its chain is broken."""
        return self._follower.is_paused(mission_id)

    def broken(self, mission_id: str) -> str | None:
        """Why the mission's chain cannot be trusted, or None."""
        return self._follower.broken(mission_id)

    async def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait (up to `timeout` s) until `predicate()` holds after a control or chain change."""
        return await self._follower.wait_until(predicate, timeout)

    def receive(self, value: bytes | None) -> None:
        """One message of missionwatch.out or .control (public so a gateway with its own
        consumer can feed it)."""
        self._follower.receive(value)

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
