"""`missionwatch run`: the Faust service around `StreamCore`.

- One agent on `missionwatch.in`, concurrency 1 (faust-streaming #606), batches
  taken with `take_events`; no Faust tables (#497, #432, #597) and no
  exactly-once mode (#323, #517): at-least-once delivery with idempotent state.
- On assignment, a partition's state catches up with the log: the messages between
  the last one it saw (offset 0 for a partition new to this worker) and the group's
  committed offset, where Faust resumes, are fed without publishing (a plain aiokafka
  reader; the agent waits on that partition meanwhile). Faust then delivers from the
  committed offset, so nothing is lost and nothing counted twice; records published
  after the last commit are published again, byte-identical (same mission, seq, hash).
- Publishes are awaited before the batch's offsets can be committed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import faust
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..admission import Limits
from ..monitor import Monitor
from ..signing import Keyring, Signer, load_private_key, write_private_key
from ..spec import SpecRegistry
from .broker import bootstrap_of
from .core import CONTROL, IN, OUT, REJECTED, StreamCore

__all__ = ["StreamSettings", "make_app", "monitor_signer"]

log = logging.getLogger("missionwatch.stream")


class StreamSettings(BaseSettings, Limits):
    """Settings of the streaming service: flags of `missionwatch run`, or MISSIONWATCH_* variables.
    The admission limits (`admission.Limits`: max_message_bytes, max_depth, ...) are settings too."""

    model_config = SettingsConfigDict(env_prefix="MISSIONWATCH_", extra="forbid")

    broker: str | None = None
    """Kafka bootstrap, e.g. kafka://127.0.0.1:9092; None: start the embedded broker."""
    broker_port: int = 9092
    """Port of the embedded broker (when `broker` is None)."""
    partitions: int = Field(4, ge=1, le=1024)
    """Partitions of the four topics, when this service creates them."""
    specs: Path = Path("detectors")
    keys: Path | None = None
    signing_key: Path | None = None
    """Monitor private key; default: DATA/monitor.pem, made on first start (kept, so a
    restarted or second worker signs with the same key)."""
    data: Path = Path("missionwatch-data")
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    app_id: str = "missionwatch"
    """The Kafka consumer group: workers with the same id split the partitions."""
    allow_unsigned: bool = False
    batch: int = Field(500, ge=1)
    """Messages taken per agent step."""
    linger: float = Field(0.02, gt=0)
    """Longest wait (s) to fill a step."""
    session_timeout: float = Field(10.0, gt=0)
    """Seconds without a heartbeat before a worker is presumed dead and its partitions move."""
    rebalance_timeout: float = Field(3.0, gt=0)
    """Seconds the group waits for members to rejoin during a rebalance."""
    fetch_wait: float = Field(0.05, gt=0, le=5)
    """Longest a fetch waits for new messages (s). Faust fixes 1.5 s, which a broker that
    holds fetches to the limit (Tansu does) adds to the time a pause takes."""

    @property
    def limits(self) -> Limits:
        """The admission limits every core `Monitor` of this service holds messages to."""
        return Limits(**{name: getattr(self, name) for name in Limits.model_fields})


def monitor_signer(settings: StreamSettings) -> Signer:
    if settings.signing_key is not None:
        return load_private_key(settings.signing_key)
    path = settings.data / "monitor.pem"
    if path.exists():
        return load_private_key(path, key_id="monitor")
    settings.data.mkdir(parents=True, exist_ok=True)
    signer = Signer.generate("monitor")
    write_private_key(signer, path)
    from ..replay import write_monitor_key

    write_monitor_key(signer, settings.data / "monitor-key.json")
    return signer


async def _read(bootstrap: str, ranges: dict[int, tuple[int, int]],
                feed: Callable[[int, list[tuple[int, bytes]]], object], stop: Callable[[], bool]) -> None:
    """Hand `feed(partition, [(offset, value), ...])` the messages of `missionwatch.in` at
    offsets [start, end) of each partition in `ranges`, as one consumer of no group reads
    them, until all are read or `stop()` says a newer rebalance began."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    todo = {TopicPartition(IN, p): end for p, (start, end) in ranges.items() if end > start}
    if not todo:
        return
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await c.start()
    try:
        c.assign(list(todo))
        for tp in todo:
            c.seek(tp, ranges[tp.partition][0])
        while todo and not stop():
            got = await c.getmany(*todo, timeout_ms=1000, max_records=5000)
            for tp, msgs in got.items():
                feed(tp.partition, [(m.offset, m.value or b"") for m in msgs if m.offset < todo[tp]])
            for tp, end in list(todo.items()):
                position = await c.position(tp)
                hw = c.highwater(tp)
                if position >= end:
                    del todo[tp]
                elif not got.get(tp) and hw is not None and hw <= position:
                    log.warning("partition %d: the log ends at %d, before the committed offset %d",
                                tp.partition, position, end)
                    del todo[tp]
    finally:
        await c.stop()


class _Gates:
    """Per input partition, whether the agent may process its messages: closed from the
    moment a rebalance assigns it until its state has caught up with the committed offset
    (Faust may fetch meanwhile), open again on revocation (the core then skips them)."""

    def __init__(self) -> None:
        self._events: dict[int, asyncio.Event] = {}

    def _event(self, partition: int) -> asyncio.Event:
        return self._events.setdefault(partition, asyncio.Event())

    def close(self, partition: int) -> None:
        self._event(partition).clear()

    def open(self, partition: int) -> None:
        self._event(partition).set()

    async def wait(self, partition: int) -> None:
        await self._event(partition).wait()


def _fetching_within(seconds: float) -> type:
    """Faust's Kafka consumer with aiokafka's fetch_max_wait_ms set (Faust hard-codes 1500)."""
    from faust.transport.drivers import aiokafka as driver

    class Thread(driver.AIOKafkaConsumerThread):
        def _create_worker_consumer(self, transport: Any) -> Any:
            consumer = super()._create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = int(seconds * 1000)  # read when the consumer starts
            return consumer

    class Consumer(driver.Consumer):
        def _new_consumer_thread(self) -> Any:
            return Thread(self, loop=self.loop, beacon=self.beacon)

    return Consumer


def make_app(settings: StreamSettings, *, bootstrap: str | None = None) -> tuple[faust.App, StreamCore]:
    """The Faust app and the core it drives. `bootstrap`: the broker actually used."""
    boot = bootstrap or bootstrap_of(settings.broker or f"127.0.0.1:{settings.broker_port}")
    registry = SpecRegistry.load_dir(settings.specs)
    keyring = Keyring.load(settings.keys) if settings.keys else Keyring()
    signer = monitor_signer(settings)
    limits = settings.limits
    core = StreamCore(lambda: Monitor(registry, signer=signer, keyring=keyring,
                                      allow_unsigned=settings.allow_unsigned, limits=limits))
    settings.data.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker="kafka://" + boot.replace(",", ";kafka://"),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        web_enabled=True,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        datadir=str(settings.data / "faust"),
        producer_acks=-1,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(1.0, settings.session_timeout / 4),
        broker_rebalance_timeout=settings.rebalance_timeout,
        stream_buffer_maxsize=4 * settings.batch,
    )
    app.transport.Consumer = _fetching_within(settings.fetch_wait)  # type: ignore[misc]
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": settings.partitions}
    in_topic = app.topic(IN, **raw)  # type: ignore[arg-type]
    topics = {t: app.topic(t, **raw) for t in (OUT, CONTROL, REJECTED)}  # type: ignore[arg-type]

    gates = _Gates()

    rebalances = [0]  # counts assignments and revocations: a catch-up stops when a newer one starts

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        rebalances[0] += 1
        this = rebalances[0]
        mine = sorted(t for t in assigned if t.topic == IN)
        for tp in mine:
            gates.close(tp.partition)
        starts = core.assign(tp.partition for tp in mine)
        # the group's committed offsets, where Faust's consumer resumes: every message before
        # one was processed by this worker or another, and is fed to the state silently
        committed = await cast(Any, app.consumer).seek_to_committed()
        ends = {tp.partition: int(committed[tp]) if (committed.get(tp) or 0) > 0 else 0 for tp in mine}
        fed = dict.fromkeys(ends, 0)

        def feed(p: int, messages: list[tuple[int, bytes]]) -> None:
            fed[p] += core.catch_up(p, messages)  # a state fed a prefix of its log stays exact

        await _read(boot, {p: (starts[p], end) for p, end in ends.items()}, feed,
                    stop=lambda: rebalances[0] != this)
        if rebalances[0] != this:
            return  # revoked meanwhile: the next assignment catches up from where this stopped
        for p, end in ends.items():
            core.activate(p)
            gates.open(p)
            log.info("partition %d: caught up on %d messages (%d..%d)", p, fed[p], starts[p], end)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        rebalances[0] += 1
        for tp in revoked:
            if tp.topic == IN:
                core.revoke(tp.partition)
                gates.open(tp.partition)

    @app.agent(in_topic, concurrency=1)
    async def monitor_in(stream: Any) -> None:
        async for events in stream.take_events(settings.batch, within=settings.linger):
            futures = []
            for ev in events:
                await gates.wait(ev.message.partition)
                for p in core.process(ev.message.partition, ev.message.offset, ev.value):
                    futures.append(await topics[p.topic].send(key=p.key, value=p.value))
            if futures:
                await asyncio.gather(*futures)

    _pages(app, core)
    return app, core


def _pages(app: faust.App, core: StreamCore) -> None:
    from .http import healthz, metrics_text, status

    @app.page("/healthz")
    async def _health(web: Any, request: Any) -> Any:
        body, code = healthz(app, core)
        return web.json(body, status=code)

    @app.page("/metrics")
    async def _metrics(web: Any, request: Any) -> Any:
        return web.text(await metrics_text(app, core), content_type="text/plain; version=0.0.4")

    @app.page("/api/missions/{mission_id}/status")
    async def _status(web: Any, request: Any, mission_id: str) -> Any:
        body, code = status(core, mission_id)
        return web.json(body, status=code)

    @app.page("/api/missions/{mission_id}/ledger")
    async def _ledger(web: Any, request: Any, mission_id: str) -> Any:
        body, code = status(core, mission_id, "ledger")
        return web.json(body, status=code)
