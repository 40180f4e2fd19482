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
- A poison message never stops the agent (Faust restarts a crashed agent with a fresh
  stream and acks the batch it held, so one exception skipped the valid messages behind
  it): the core turns what fails on a message into a rejection, the agent guards each
  message again, a record too large to publish is replaced by a bounded rejection row,
  and other publish failures are retried while the batch's offsets wait.
- The consumers fetch at least `max_message_bytes` per partition, so the largest message
  the monitor admits always fits in one fetch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
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
from .checkpoint import Checkpoints
from .core import CONTROL, IN, OUT, REJECTED, Publish, StreamCore, exception_text
from .dumper import Dumper
from .http import Health
from .outlog import OutLog

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
    view_token: str | None = Field(None, min_length=8, pattern=r"^[\x21-\x7e]+$")
    """When set, viewing the console and its API needs this token (or a reviewer token):
    at least 8 printable ASCII characters."""
    dashboards: Path | None = None
    """The console's dashboard files (*.toml, console.dashboards); default ./dashboards if
    present, else the dashboards/ of the source tree this package runs from."""
    reviewers: Path | None = None
    """The console's reviewers file: reviewer tokens (their SHA-256) and the keys the server
    signs their reviews with (`console.review.Desk`). None: the console is read-only."""
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
    ledger: bool = True
    """Keep the analysts' live ledger in DATA/ledger (store/live.py; `missionwatch sql --data`)."""
    ledger_every: float = Field(5.0, gt=0, le=3600)
    """Seconds between the live ledger's commits: how far behind the stream analysts read."""
    checkpoint_every: float = Field(60.0, ge=0, le=86400)
    """Seconds between checkpoints of each partition's state in DATA/checkpoints, from which a
    restarted worker replays only the tail of the log (stream/checkpoint.py); 0: none."""
    fetch_wait: float = Field(0.05, gt=0, le=5)
    """Longest a fetch waits for new messages (s). Faust fixes 1.5 s, which a broker that
    holds fetches to the limit (Tansu does) adds to the time a pause takes."""

    @property
    def limits(self) -> Limits:
        """The admission limits every core `Monitor` of this service holds messages to."""
        return Limits(**{name: getattr(self, name) for name in Limits.model_fields})

    @property
    def fetch_bytes(self) -> int:
        """Bytes a consumer fetches per partition: room for the largest admissible message."""
        return max(1024**2, self.max_message_bytes + 64 * 1024)


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
                feed: Callable[[int, list[tuple[int, bytes]]], object], stop: Callable[[], bool],
                fetch_bytes: int = 1024**2) -> None:
    """Hand `feed(partition, [(offset, value), ...])` the messages of `missionwatch.in` at
    offsets [start, end) of each partition in `ranges`, as one consumer of no group reads
    them, until all are read or `stop()` says a newer rebalance began."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.errors import RecordTooLargeError

    todo = {TopicPartition(IN, p): end for p, (start, end) in ranges.items() if end > start}
    if not todo:
        return
    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                         max_partition_fetch_bytes=fetch_bytes)
    await c.start()
    try:
        c.assign(list(todo))
        for tp in todo:
            c.seek(tp, ranges[tp.partition][0])
        while todo and not stop():
            try:
                got = await c.getmany(*todo, timeout_ms=1000, max_records=5000)
            except RecordTooLargeError as exc:  # a broker that cuts a fetch short; aiokafka steps past it
                log.error("catch-up: %s", exc)
                continue
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


def make_app(settings: StreamSettings, *, bootstrap: str | None = None,
             monitor: type[Monitor] = Monitor) -> tuple[faust.App, StreamCore]:
    """The Faust app and the core it drives. `bootstrap`: the broker actually used; `monitor`:
    the core's class (tests plant a failing one)."""
    boot = bootstrap or bootstrap_of(settings.broker or f"127.0.0.1:{settings.broker_port}")
    registry = SpecRegistry.load_dir(settings.specs)
    keyring = Keyring.load(settings.keys) if settings.keys else Keyring()
    signer = monitor_signer(settings)
    limits = settings.limits
    settings.data.mkdir(parents=True, exist_ok=True)
    app = _faust_app(settings, boot)
    core = StreamCore(lambda: monitor(registry, signer=signer, keyring=keyring,
                                      allow_unsigned=settings.allow_unsigned, limits=limits),
                      max_publish_bytes=app.conf.producer_max_request_size, outlog=OutLog(settings.data / "out"),
                      ledger=settings.data / "ledger" if settings.ledger else None,
                      checkpoints=Checkpoints(settings.data / "checkpoints") if settings.checkpoint_every else None)
    raw = {"key_type": bytes, "value_type": bytes, "key_serializer": "raw", "value_serializer": "raw",
           "partitions": settings.partitions}
    in_topic = app.topic(IN, **raw)  # type: ignore[arg-type]
    topics = {t: app.topic(t, **raw) for t in (OUT, CONTROL, REJECTED)}  # type: ignore[arg-type]
    gates, health = _Gates(), Health()
    writing = _commits(app, core, settings.ledger_every, settings.checkpoint_every)
    _rebalances(app, core, gates, health, boot, settings.fetch_bytes, writing)
    publisher = _Publisher(topics, core, health)

    @app.agent(in_topic, concurrency=1)
    async def monitor_in(stream: Any) -> None:
        health.agent_running = True
        try:
            async for events in stream.take_events(settings.batch, within=settings.linger):
                sent = []
                for ev in events:
                    p, offset, value = ev.message.partition, ev.message.offset, ev.value or b""
                    await gates.wait(p)
                    try:
                        pubs = core.process(p, offset, value)
                    except Exception as exc:  # process never raises: the last guard, should that change
                        pubs = [core.internal_error(p, offset, value, exception_text(exc))]
                    sent += [await publisher.send(pub, p, offset, value) for pub in pubs]
                    await asyncio.sleep(0)  # a turn for the web server, the timers and the producer
                await publisher.settle(sent)
                core.flush_out()
        except Exception as exc:  # nothing above raises; if it does, /healthz says so until a restart
            health.agent_crash = exception_text(exc)
            log.exception("the agent crashed")
            raise
        finally:
            health.agent_running = False

    _pages(app, core, health)
    _console(app, core, settings, keyring, in_topic)
    return app, core


def default_dashboards_dir() -> Path:
    """./dashboards if present, else the dashboards/ of the source tree this package runs from."""
    here = Path("dashboards")
    return here if here.is_dir() else Path(__file__).resolve().parents[3] / "dashboards"


def _console(app: faust.App, core: StreamCore, settings: StreamSettings, keyring: Keyring, in_topic: Any) -> None:
    """Serve the risk console (missionwatch.console.web) from the worker's web server, in place of
    Faust's `/` index."""
    from ..console.review import Desk
    from ..console.web import Console, console_routes

    desk = Desk.load(settings.reviewers, keyring) if settings.reviewers else Desk()

    async def publish(key: bytes, value: bytes) -> None:
        await (await in_topic.send(key=key, value=value))

    console = Console(core, desk, publish, view_token=settings.view_token,
                      stopping=lambda: bool(getattr(app, "should_stop", False)),
                      dashboards=settings.dashboards or default_dashboards_dir())
    bps = app.web.blueprints
    bps._enabled = [(p, b) for p, b in bps._enabled if "production_index" not in str(b)]  # its `/` is ours
    base = app.on_webserver_init

    def init(web: Any) -> None:
        base(web)
        web.web_app.router.add_routes(console_routes(console))

    app.on_webserver_init = init  # type: ignore[method-assign]


def _faust_app(settings: StreamSettings, boot: str) -> faust.App:
    app = faust.App(
        settings.app_id,
        broker="kafka://" + boot.replace(",", ";kafka://"),
        store="memory://",
        topic_partitions=settings.partitions,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        consumer_max_fetch_size=settings.fetch_bytes,
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
    return app


def _commits(app: faust.App, core: StreamCore, ledger_every: float, checkpoint_every: float) -> asyncio.Lock:
    """Commit the live ledgers every `ledger_every` seconds and at shutdown (writing in a thread,
    off the agent's path), and checkpoint the partitions every `checkpoint_every` (0: never) in a
    forked child (stream/dumper.py), forked in the same turn as a ledger commit of the same
    offsets is taken; the checkpoints go in place only once that commit is written, so the
    ledger is never behind them. The lock keeps one ledger writer at a time (a revocation
    commits under it); it is not held while the child runs."""
    lock = asyncio.Lock()
    dumper = Dumper(core.checkpoints) if core.checkpoints is not None and checkpoint_every else None

    async def commit(checkpoint: bool = False) -> None:
        async with lock:
            todo = core.ledgers.jobs()
            child = dumper.start(core.checkpoint_jobs()) if checkpoint and dumper is not None else None
            ok = True
            if todo:
                ok = await asyncio.get_running_loop().run_in_executor(None, _write, todo)
        if child is not None and dumper is not None:
            for p, offset in await dumper.settle(child, ok):
                if p in core.partitions:
                    core.checkpointed[p] = max(offset, core.checkpointed.get(p, -1))

    cast(Any, app.timer(ledger_every))(commit)
    if checkpoint_every:
        async def checkpoint() -> None:
            await commit(checkpoint=True)

        cast(Any, app.timer(checkpoint_every))(checkpoint)

    @app.on_before_shutdown.connect  # type: ignore[arg-type]
    async def _shutdown(sender: Any, **kwargs: Any) -> None:
        if dumper is not None:
            await dumper.drain()
        async with lock:
            for p in list(core.ledgers):
                core.ledgers.close(p)

    return lock


def _write(ledgers: list[Any]) -> bool:
    """The writer thread's part: the ledger commits; whether all were written."""
    return all([led.write() for led in ledgers])


def _rebalances(app: faust.App, core: StreamCore, gates: _Gates, health: Health, boot: str,
                fetch_bytes: int, writing: asyncio.Lock) -> None:
    """On assignment, catch each new partition up before the agent may process it; on
    revocation, stop processing it."""
    rebalances = [0]  # counts assignments and revocations: a catch-up stops when a newer one starts

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _assigned(sender: Any, assigned: set[Any], **kwargs: Any) -> None:
        rebalances[0] += 1
        this = rebalances[0]
        mine = sorted(t for t in assigned if t.topic == IN)
        for tp in mine:
            gates.close(tp.partition)
        starts = core.assign(tp.partition for tp in mine)
        health.catching_up = {tp.partition for tp in mine}
        # the group's committed offsets, where Faust's consumer resumes: every message before
        # one was processed by this worker or another, and is fed to the state silently
        committed = await cast(Any, app.consumer).seek_to_committed()
        ends = {tp.partition: int(committed[tp]) if (committed.get(tp) or 0) > 0 else 0 for tp in mine}
        fed = dict.fromkeys(ends, 0)

        def feed(p: int, messages: list[tuple[int, bytes]]) -> None:
            fed[p] += core.catch_up(p, messages)  # a state fed a prefix of its log stays exact

        await _read(boot, {p: (starts[p], end) for p, end in ends.items()}, feed,
                    stop=lambda: rebalances[0] != this, fetch_bytes=fetch_bytes)
        if rebalances[0] != this:
            return  # revoked meanwhile: the next assignment catches up from where this stopped
        for p, end in ends.items():
            core.activate(p)
            gates.open(p)
            health.catching_up.discard(p)
            log.info("partition %d: caught up on %d messages (%d..%d)", p, fed[p], starts[p], end)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def _revoked(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        rebalances[0] += 1
        async with writing:  # the partition's ledger is committed and let go: its next owner reads on
            for tp in revoked:
                if tp.topic == IN:
                    core.revoke(tp.partition)
                    gates.open(tp.partition)
                    health.catching_up.discard(tp.partition)


def _too_large(exc: BaseException) -> bool:
    """Whether a publish failed because the record is larger than the producer or broker takes."""
    from aiokafka.errors import (
        MessageSizeTooLargeError,
        RecordListTooLargeError,
        RecordTooLargeError,
    )

    seen: BaseException | None = exc
    for _ in range(5):  # Faust wraps aiokafka's error (ProducerSendError from MessageSizeTooLargeError)
        if seen is None:
            return False
        if isinstance(seen, MessageSizeTooLargeError | RecordListTooLargeError | RecordTooLargeError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


@dataclass
class _Sent:
    pub: Publish
    partition: int
    offset: int
    message: bytes
    delivery: asyncio.Future[Any]
    replaced: bool = False


class _Publisher:
    """Sends what the core returns and waits until the broker has it. A record the producer or
    the broker refuses as too large is replaced by a bounded rejection row of the message that
    caused it; other failures (the broker unreachable) are retried, and the batch's offsets
    wait meanwhile, so nothing is skipped (/healthz says publishing is failing)."""

    def __init__(self, topics: dict[str, Any], core: StreamCore, health: Health) -> None:
        self.topics = topics
        self.core = core
        self.health = health

    async def send(self, pub: Publish, partition: int, offset: int, message: bytes) -> _Sent:
        return _Sent(pub, partition, offset, message, await self._send(pub))

    async def _send(self, pub: Publish) -> asyncio.Future[Any]:
        try:
            delivery: asyncio.Future[Any] = asyncio.ensure_future(
                await self.topics[pub.topic].send(key=pub.key, value=pub.value))
            return delivery
        except Exception as exc:  # refused before it left (too large, producer stopped): settle decides
            failed: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            failed.set_exception(exc)
            return failed

    async def settle(self, sent: list[_Sent]) -> None:
        for s in sent:
            await self._settle(s)

    async def _settle(self, s: _Sent) -> None:
        delay = 0.1
        while True:
            try:
                await s.delivery
                self.health.publish_failing = None
                return
            except Exception as exc:
                if _too_large(exc) and s.replaced:
                    log.error("partition %d offset %d: even the bounded rejection row (%d bytes) is too "
                              "large to publish (%s); dropped", s.partition, s.offset, len(s.pub.value), exc)
                    return
                if _too_large(exc):
                    s.pub = self.core.too_large(s.partition, s.offset, s.message, s.pub, exception_text(exc))
                    s.replaced = True
                else:
                    self.health.publish_failing = exception_text(exc)
                    log.warning("publishing to %s failed (%s); retrying in %.1f s", s.pub.topic, exc, delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            s.delivery = await self._send(s.pub)


def _pages(app: faust.App, core: StreamCore, health: Health) -> None:
    from .http import healthz, metrics_text, status

    @app.page("/healthz")
    async def _health(web: Any, request: Any) -> Any:
        body, code = healthz(app, core, health)
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
