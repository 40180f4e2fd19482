"""Throughput, latency, recovery and memory, each figure beside its ceiling, in one run
(these machines are noisy: the ratios, measured side by side, are the figures that count).

What runs, in order (each in-process and stream figure `--repeats` times, interleaved: one
round measures every figure once, on the same records):

1. raw consume + decode: an aiokafka consumer (no group) reads the messages a round just
   streamed back from the broker and json-decodes them: the ceiling for the stream;
2. bare Ed25519 verify on one core (cryptography's `Ed25519PublicKey.verify` over the
   records' canonical bytes): the ceiling for single signed records;
3. decode + canonicalize (`json.loads`, `missionwatch.canonical`) of the same lines: the
   ceiling for the core alone;
4. the core alone: `Monitor.feed(Prepared)` over the same records unsigned (`allow_unsigned`),
   decoded and canonicalized beforehand (`Monitor.prepare`, untimed): what the core does past
   intake, the cheapest way in; and `Monitor.feed(dict)` over them decoded (the core then
   checks the limits and canonicalizes);
5. replay, signed and unsigned (`replay_lines`, `workers=0`: one core);
6. stream: one `missionwatch run` worker on the embedded broker fed the same records one per
   message, and in batch envelopes of 500 (signed envelope, unsigned items: what
   `missionwatch.gate.Gate` sends; and with every item signed too, as benchmarks/stream.py
   does), timed from the first record produced to the last processed (as stream.py's `_timed`,
   with its `_produce`), and the longest the worker took to answer /metrics meanwhile;
7. produce-to-control latency: timestamped receipts produced at a fixed rate (2,000/s, 80%
   of the measured single-record maximum, and 40% of it) for missions whose planted discount gap makes
   the demo spec pause them; from the produce time of the record that triggered each pause to
   the arrival of its control record; beside it the broker's own one hop (produce -> consume)
   at the same load;
8. recovery: a partition restored from its checkpoint (`Checkpoints.load` + catch-up of the
   tail) against a replay from offset 0, checked equal to it, at the StreamCore level (10^4
   and 10^5 records; 10^6 extrapolated, or measured with `--million`), with the event loop's
   stall while the checkpoint is taken: pickled on the loop (as before) and by a forked child
   (stream/dumper.py, the worker's way); and through Kafka: a worker with
   `--checkpoint-every` killed with -9 and restarted, with and without its checkpoints;
9. peak RSS of a worker's state over 10,000 missions x 12 cohorts (benchmarks/memory.py's case:
   each mission's monitor and console history, fed through `StreamCore.process`).

The broker is Tansu without the compatibility listener (aiokafka and Faust speak to it
directly, as to a real Kafka): the listener pumps every byte through a Python thread of the
process that starts it, which would be this one. Writes the "Throughput" section of
benchmarks/RESULTS.md (or of `--results`); `--json` also writes every figure as JSON.

    python benchmarks/throughput.py [--quick] [--results PATH] [--json PATH] [--repeats R]
                                    [--skip PART ...] [--only recovery] [--million]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import itertools
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: the repository root

from benchmarks import memory, results, stream
from missionwatch.admission import DEFAULT_LIMITS
from missionwatch.canonical import canonical_bytes, strip_envelope
from missionwatch.monitor import Monitor
from missionwatch.records import (
    SCHEMA_BATCH,
    SCHEMA_CONTROL,
    SCHEMA_ESCALATION,
    TOPIC_CONTROL,
    TOPIC_IN,
    TOPIC_OUT,
)
from missionwatch.replay import replay_lines
from missionwatch.signing import Keyring, Signer, write_private_key
from missionwatch.sim import Campaign, generate
from missionwatch.spec import SpecRegistry
from missionwatch.stream.broker import EmbeddedBroker, create_topics, free_port, stop_process_group
from missionwatch.stream.checkpoint import MAGIC, Checkpoints
from missionwatch.stream.core import StreamCore
from missionwatch.stream.demo import write_demo_specs
from missionwatch.stream.dumper import Dumper
from missionwatch.stream.http import parse_metrics

ROOT = Path(__file__).resolve().parents[1]
PARTITIONS = 4
ECHO = "bench.echo"
"""A topic of this benchmark's own: the broker's one hop, produce -> consume, with no worker."""
FETCH_BYTES = max(1024**2, DEFAULT_LIMITS.max_message_bytes + 64 * 1024)
"""What a worker's consumers fetch per partition (StreamSettings.fetch_bytes): the raw consumer's too."""
BATCH = 500
FIXED_RATE = 2_000.0
"""The fixed offered load of the latency figure, receipts per second."""
LATENCY_FETCH_WAIT_MS = 10
"""The latency figure's consumer waits at most this long per fetch (the worker's: 50 ms)."""


@dataclass(frozen=True)
class Sizes:
    actions: int
    """Actions per mission, 4 missions (one per partition): the records of figures 1-6."""
    repeats: int
    latency_missions: int
    """Missions per offered load; each gives one pause (one latency sample)."""
    latency_actions: int
    warm: int
    """Records per mission fed once, untimed, before the first round (first-use costs)."""
    recovery: tuple[int, ...]
    """Records in the partition, StreamCore level."""
    recovery_repeats: int
    """Repeats of the smallest recovery size (the others run once)."""
    tail: int
    """Messages after the checkpoint, caught up on restore."""
    kill_records: int
    """Records per partition for the kill -9 through Kafka (4 partitions)."""
    rss: memory.Case


FULL = Sizes(actions=4_000, repeats=3, latency_missions=20, latency_actions=900, warm=500, recovery=(10_000, 100_000),
             recovery_repeats=3, tail=1_000, kill_records=10_000,
             rss=memory.Case("10000x12", 10_000, 24, 24, cohorts=12, worker=True))
QUICK = Sizes(actions=250, repeats=1, latency_missions=1, latency_actions=900, warm=50, recovery=(1_000,),
              recovery_repeats=1, tail=100, kill_records=300,
              rss=memory.Case("100x12", 100, 24, 24, cohorts=12, worker=True))
FLOOR = memory.Case("floor", 1, 200, 50, worker=True)
"""benchmarks/memory.py's worker floor: the interpreter and a worker's imports."""


_T0 = time.perf_counter()


def say(text: str) -> None:
    print(f"[{time.perf_counter() - _T0:5.0f} s] {text}", flush=True)


# ------------------------------------------------------------------ records
def partition_of(key: bytes, n: int = PARTITIONS) -> int:
    """The partition aiokafka's (and Kafka's) default partitioner gives `key`."""
    from aiokafka.partitioner import murmur2

    return (int(murmur2(key)) & 0x7FFFFFFF) % n


def one_per_partition(prefix: str, n: int = PARTITIONS) -> list[str]:
    """n mission ids `prefix-k` that the default partitioner spreads one per partition."""
    found: dict[int, str] = {}
    for k in itertools.count():
        if len(found) == n:
            break
        found.setdefault(partition_of(f"{prefix}-{k}".encode(), n), f"{prefix}-{k}")
    return [found[p] for p in range(n)]


def interleave(groups: Sequence[Sequence[Any]]) -> list[Any]:
    """Round robin over `groups`, none cut short."""
    return [x for row in itertools.zip_longest(*groups) for x in row if x is not None]


def dumps(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode()


@dataclass
class RecordSet:
    """One set of the base records under its own mission ids, in every form a figure takes."""

    missions: list[str]
    per: dict[str, list[dict[str, Any]]]
    """Unsigned records per mission, in campaign order."""
    gate: Signer

    @property
    def records(self) -> int:
        return sum(len(r) for r in self.per.values())

    def single(self) -> list[tuple[bytes, bytes]]:
        """(key, value): each record signed, one per message, missions interleaved."""
        return interleave([[(m.encode(), dumps(self.gate.sign(r))) for r in recs] for m, recs in self.per.items()])

    def unsigned(self) -> list[bytes]:
        return [v for _, v in interleave([[(m, dumps(r)) for r in recs] for m, recs in self.per.items()])]

    def batches(self, *, sign_items: bool) -> list[tuple[bytes, bytes]]:
        """(key, value): signed envelopes of 500 records of one mission; the items signed too
        with `sign_items` (benchmarks/stream.py's), else not (the gate's: the envelope vouches)."""
        out = []
        for m, recs in self.per.items():
            for k in range(0, len(recs), BATCH):
                items = [self.gate.sign(r) if sign_items else r for r in recs[k:k + BATCH]]
                env = self.gate.sign({"schema": SCHEMA_BATCH, "batch_id": f"{m}-{k}", "items": items})
                out.append((m.encode(), dumps(env)))
        return out


def base_records(actions: int) -> list[list[dict[str, Any]]]:
    """Four simulated retention missions (as benchmarks/stream.py's), unsigned."""
    return [list(generate(Campaign(mission_id="base", seed=i, actions=actions, subjects=max(actions // 4, 10))))
            for i in range(PARTITIONS)]


def record_set(base: list[list[dict[str, Any]]], prefix: str, gate: Signer) -> RecordSet:
    missions = one_per_partition(prefix)
    per = {m: [{**r, "mission_id": m} for r in recs] for m, recs in zip(missions, base, strict=True)}
    return RecordSet(missions, per, gate)


# ------------------------------------------------------------- in-process
@dataclass
class Setup:
    tmp: Path
    specs: Path
    registry: SpecRegistry
    gate: Signer
    monitor_key: Signer
    ring: Keyring
    keys_path: Path
    monitor_pem: Path

    def monitor(self, *, unsigned: bool = False) -> Monitor:
        if unsigned:
            return Monitor(self.registry, signer=self.monitor_key, allow_unsigned=True)
        return Monitor(self.registry, signer=self.monitor_key, keyring=self.ring)


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("nan")


def in_process(s: Setup, signed: list[bytes], unsigned: list[bytes]) -> dict[str, float]:
    """Figures 2-5 over the same records, once each: records/s."""
    out: dict[str, float] = {}
    pub = s.gate.public_key
    pairs = []
    for line in signed:
        rec = json.loads(line)
        pairs.append((base64.b64decode(rec["signature"]["value"]), canonical_bytes(strip_envelope(rec))))
    t = time.perf_counter()
    for sig, payload in pairs:
        pub.verify(sig, payload)
    out["verify"] = rate(len(pairs), time.perf_counter() - t)

    t = time.perf_counter()
    for line in signed:
        canonical_bytes(strip_envelope(json.loads(line)))
    out["decode_canonicalize"] = rate(len(signed), time.perf_counter() - t)

    m = s.monitor(unsigned=True)
    prepared = [m.prepare(line) for line in unsigned]  # decoded and canonicalized beforehand, untimed
    rejected = 0
    t = time.perf_counter()
    for p in prepared:
        rejected += len(m.feed(p).rejected)
    out["core_prepared"] = rate(len(prepared), time.perf_counter() - t)
    del prepared, m

    m = s.monitor(unsigned=True)
    dicts = [json.loads(line) for line in unsigned]
    t = time.perf_counter()
    for d in dicts:
        rejected += len(m.feed(d).rejected)
    out["core_dict"] = rate(len(dicts), time.perf_counter() - t)
    del dicts, m

    t = time.perf_counter()
    rejected += replay_lines(s.monitor(), signed, workers=0, keep=False).n_rejected
    out["replay_signed"] = rate(len(signed), time.perf_counter() - t)
    t = time.perf_counter()
    rejected += replay_lines(s.monitor(unsigned=True), unsigned, workers=0, keep=False).n_rejected
    out["replay_unsigned"] = rate(len(unsigned), time.perf_counter() - t)
    if rejected:
        raise SystemExit(f"the core rejected {rejected} records of the in-process figures")
    return out


# ------------------------------------------------------------------ Kafka
class Offsets:
    """The end offset of each partition of missionwatch.in, counted from what this script produced
    there (nothing else writes to it). Not asked of the broker: Tansu answers ListOffsets (latest)
    with the base offset of the partition's last record batch + 1, short of the end when that batch
    holds several records (aiokafka's `end_offsets`, `seek_to_end`); its fetch high watermark is right."""

    def __init__(self) -> None:
        self.ends = dict.fromkeys(range(PARTITIONS), 0)

    def add(self, messages: Sequence[tuple[bytes, bytes]]) -> None:
        for key, _ in messages:
            self.ends[partition_of(key)] += 1

    def now(self) -> dict[int, int]:
        return dict(self.ends)


def consume_decode(bootstrap: str, start: dict[int, int], end: dict[int, int]) -> tuple[int, float]:
    """Read missionwatch.in from `start` to `end` (per partition) and json-decode every message:
    (records, seconds); a batch envelope counts its items."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def go() -> tuple[int, float]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             max_partition_fetch_bytes=FETCH_BYTES, fetch_max_wait_ms=50)
        await c.start()
        try:
            todo = {TopicPartition(TOPIC_IN, p) for p in end if end[p] > start.get(p, 0)}
            c.assign(list(todo))
            for tp in todo:
                c.seek(tp, start.get(tp.partition, 0))
            records = 0
            deadline = time.monotonic() + 600
            t = time.perf_counter()
            while todo and time.monotonic() < deadline:
                got = await c.getmany(*todo, timeout_ms=1000, max_records=10_000)
                for tp, msgs in got.items():
                    stop = end[tp.partition]
                    for msg in msgs:
                        if msg.offset < stop:
                            rec = json.loads(msg.value or b"")
                            records += len(rec["items"]) if rec.get("schema") == SCHEMA_BATCH else 1
                    if msgs and msgs[-1].offset + 1 >= stop:
                        todo.discard(tp)
            if todo:
                raise SystemExit(f"the raw consumer did not read to the end of {sorted(todo)}")
            return records, time.perf_counter() - t
        finally:
            await c.stop()

    return asyncio.run(go())


class Worker:
    """`missionwatch run` in its own process group (so kill -9 is a real kill), log to a file."""

    def __init__(self, broker: EmbeddedBroker, s: Setup, data: Path, *, group: str = "missionwatch",
                 extra: Sequence[str] = (), session_timeout: float | None = None) -> None:
        self.port = free_port()
        data.mkdir(parents=True, exist_ok=True)
        self.log_path = data / f"worker-{self.port}.log"
        env = {**os.environ, "MISSIONWATCH_APP_ID": group}
        if session_timeout is not None:
            env["MISSIONWATCH_SESSION_TIMEOUT"] = str(session_timeout)
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "missionwatch.cli", "run", "--broker", broker.url, "--data", str(data),
                 "--web-port", str(self.port), "--keys", str(s.keys_path), "--signing-key", str(s.monitor_pem),
                 "--specs", str(s.specs), "--loglevel", "info", *extra],
                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.started = time.perf_counter()

    def health(self) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as r:
                return dict(json.loads(r.read()))
        except (OSError, ValueError, urllib.error.HTTPError):
            return None

    def metrics(self, timeout: float = 120.0) -> dict[str, float]:
        """/metrics (stream.py's `_metrics`, but patient: the worker's event loop, which answers
        it, may be busy for a long while: see `timed`)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=timeout) as r:
            return parse_metrics(r.read().decode())

    def wait_ready(self, timeout: float = 300.0) -> float:
        """Seconds from the start of the process until it serves all partitions, caught up."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"the worker exited with {self.proc.returncode}; see {self.log_path}")
            h = self.health()
            if h and h.get("partitions") == list(range(PARTITIONS)) and not h.get("catching_up"):
                return time.perf_counter() - self.started
            time.sleep(0.05)
        raise SystemExit(f"the worker was not ready in {timeout:.0f} s; see {self.log_path}")

    def wait_records(self, at_least: float, timeout: float = 600.0) -> None:
        deadline = time.monotonic() + timeout
        while self.metrics()["missionwatch_records_in_total"] < at_least:
            if time.monotonic() > deadline:
                raise SystemExit(f"the worker did not process {at_least:.0f} records in {timeout:.0f} s")
            time.sleep(0.05)

    def rejected(self) -> float:
        return sum(v for k, v in self.metrics().items() if k.startswith("missionwatch_rejected_total"))

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        stop_process_group(self.proc, grace=30)


def timed(worker: Worker, bootstrap: str, messages: list[tuple[bytes, bytes]], records: int) -> tuple[float, float]:
    """Records/s from the first produced to the last processed, as benchmarks/stream.py's `_timed`
    (its `_produce`, then /metrics every 50 ms); and the longest a /metrics request waited for its
    answer meanwhile: how long the worker's event loop went without a turn."""
    base = worker.metrics()["missionwatch_records_in_total"]
    t = time.perf_counter()
    stream._produce(bootstrap, messages)
    longest = 0.0
    while True:
        asked = time.perf_counter()
        done = worker.metrics()["missionwatch_records_in_total"] >= base + records
        longest = max(longest, time.perf_counter() - asked)
        if done:
            return records / (time.perf_counter() - t), longest
        time.sleep(0.05)


def stream_round(broker: EmbeddedBroker, worker: Worker, offsets: Offsets, sets: dict[str, RecordSet],
                 messages: dict[str, list[tuple[bytes, bytes]]]) -> dict[str, float]:
    """Figure 6 and its ceiling (figure 1) once for each kind of message: records/s."""
    out: dict[str, float] = {}
    for kind in ("single", "batch", "batch_signed_items"):
        n = sets[kind].records
        before = offsets.now()
        out[f"stream_{kind}"], out[f"stall_{kind}"] = timed(worker, broker.bootstrap, messages[kind], n)
        offsets.add(messages[kind])
        records, seconds = consume_decode(broker.bootstrap, before, offsets.now())
        if records != n:
            raise SystemExit(f"the raw consumer read {records} records of {kind}, not {n}")
        out[f"raw_{kind}"] = rate(records, seconds)
    return out


# ---------------------------------------------------------------- latency
@dataclass
class PauseMission:
    mission: str
    lines: list[tuple[bytes, bytes]]
    """(key, signed value) up to and with the record whose pause is measured."""
    trigger: str
    """The receipt_id (or outcome_id) that tips the pause, by a replay of the same records."""


def pause_missions(s: Setup, prefix: str, n: int, actions: int, seed0: int) -> list[PauseMission]:
    """`n` missions whose agents never offer customers aged 65+ a discount: under the demo spec
    the discount gap pauses each once; its records are cut after the one that tips the pause."""
    out = []
    for k in range(n):
        mid = f"{prefix}-{k}"
        recs = list(generate(Campaign(mission_id=mid, seed=seed0 + k, actions=actions, subjects=1_600,
                                      discount_gap="age_band=65+", discount_gap_factor=0.0)))
        m = s.monitor(unsigned=True)
        for i, rec in enumerate(recs):
            step = m.feed(rec)
            if any(o["schema"] == SCHEMA_CONTROL and o["state"] == "paused" for o in step.out):
                trigger = str(rec.get("receipt_id") or rec.get("outcome_id"))
                out.append(PauseMission(mid, [(mid.encode(), dumps(s.gate.sign(r))) for r in recs[:i + 1]], trigger))
                break
    return out


def percentile(xs: Sequence[float], q: float) -> float:
    """The q-quantile by linear interpolation between order statistics (numpy's default)."""
    ys = sorted(xs)
    if not ys:
        return float("nan")
    h = (len(ys) - 1) * q
    lo = int(h)
    return ys[lo] + (ys[min(lo + 1, len(ys) - 1)] - ys[lo]) * (h - lo)


def paced(bootstrap: str, topic: str, messages: Sequence[tuple[bytes, bytes]], per_second: float,
          listen: Sequence[str], on_message: Callable[[str, bytes | None, bytes, float], None],
          done: Callable[[], bool], settle: float = 60.0) -> tuple[list[float], float]:
    """Produce `messages` to `topic` at `per_second` (each 5 ms tick sends what is due), while one
    consumer (no group, from the end) hands every message of `listen` to `on_message(topic, key,
    value, arrival)`; wait until `done()` (at most `settle` s after the last send). Return each
    message's produce time (time.perf_counter(), just before `send`) and the achieved rate."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    async def go() -> tuple[list[float], float]:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                                    fetch_max_wait_ms=LATENCY_FETCH_WAIT_MS, max_partition_fetch_bytes=FETCH_BYTES)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await consumer.start()
        await producer.start()
        reader: asyncio.Task[None] | None = None
        try:
            tps = [TopicPartition(t, p) for t in listen for p in range(PARTITIONS)]
            consumer.assign(tps)
            await consumer.seek_to_end(*tps)
            for tp in tps:
                await consumer.position(tp)

            async def read() -> None:
                while True:
                    got = await consumer.getmany(timeout_ms=100)
                    now = time.perf_counter()
                    for tp, msgs in got.items():
                        for msg in msgs:
                            on_message(tp.topic, msg.key, msg.value or b"", now)

            reader = asyncio.create_task(read())
            sent_at = [0.0] * len(messages)
            i, t0 = 0, time.perf_counter()
            while i < len(messages):
                due = min(len(messages), int((time.perf_counter() - t0) * per_second) + 1)
                while i < due:
                    key, value = messages[i]
                    sent_at[i] = time.perf_counter()
                    await producer.send(topic, value=value, key=key)
                    i += 1
                await asyncio.sleep(0.005)
            await producer.flush()
            achieved = rate(len(messages), time.perf_counter() - t0)
            deadline = time.monotonic() + settle
            while not done() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            return sent_at, achieved
        finally:
            if reader is not None:
                reader.cancel()
            await producer.stop()
            await consumer.stop()

    return asyncio.run(go())


@dataclass
class Latency:
    tag: str
    """"fixed" (2,000/s), "80pct" or "40pct" (of the measured maximum)."""
    offered: float
    achieved: float
    samples: list[float]
    missions: int
    hop: list[float]
    hop_achieved: float
    busy: float
    """The share of the run's wall time the worker spent in `StreamCore.process` (its /metrics)."""
    processed: float
    """Records/s from the first produced to the last processed: below `achieved`, the worker fell behind."""

    def row(self) -> dict[str, float]:
        return {"offered": self.offered, "achieved": self.achieved, "samples": len(self.samples),
                "missions": self.missions, "p50_ms": percentile(self.samples, 0.5) * 1000,
                "p99_ms": percentile(self.samples, 0.99) * 1000, "max_ms": max(self.samples, default=0) * 1000,
                "hop_p50_ms": percentile(self.hop, 0.5) * 1000, "hop_p99_ms": percentile(self.hop, 0.99) * 1000,
                "hop_samples": len(self.hop), "hop_achieved": self.hop_achieved, "worker_busy": self.busy,
                "processed": self.processed}


def relay(groups: Sequence[Sequence[Any]], width: int) -> list[Any]:
    """Round robin over `width` groups at a time, the next group taking the place of one that
    ends: the groups' last items (the pauses) spread over the whole run."""
    waiting = [iter(g) for g in groups]
    active, waiting, out = waiting[:width], waiting[width:], []
    while active:
        still = []
        for it in active:
            x = next(it, None)
            if x is not None:
                out.append(x)
                still.append(it)
            elif waiting:
                still.append(waiting.pop(0))
        active = still
    return out


def latency(broker: EmbeddedBroker, worker: Worker, offsets: Offsets, missions: list[PauseMission],
            per_second: float, tag: str) -> Latency:
    """Produce the missions' records at `per_second`, four missions at a time; the time from the
    produce of each pause's triggering record to the arrival of the pause; then the broker's one hop
    at the same load."""
    order = relay([[(pm.mission, line) for line in pm.lines] for pm in missions], PARTITIONS)
    msgs = [line for _, line in order]
    index = {}  # (mission, trigger) -> position in `msgs`
    for pos, (mid, (_, value)) in enumerate(order):
        rec = json.loads(value)
        index[(mid, str(rec.get("receipt_id") or rec.get("outcome_id")))] = pos
    want = {pm.mission for pm in missions}
    controls: dict[str, tuple[str, float]] = {}
    triggers: dict[str, str] = {}

    def on_message(topic: str, key: bytes | None, value: bytes, now: float) -> None:
        rec = json.loads(value)
        if rec.get("mission_id") not in want:
            return
        if rec.get("schema") == SCHEMA_CONTROL and rec.get("state") == "paused":
            controls.setdefault(rec["mission_id"], (str(rec.get("cause")), now))
        elif rec.get("schema") == SCHEMA_ESCALATION:
            triggers[str(rec["escalation_id"])] = str(rec.get("triggered_by"))

    before, t0 = worker.metrics(), time.perf_counter()
    sent_at, achieved = paced(broker.bootstrap, TOPIC_IN, msgs, per_second, (TOPIC_CONTROL, TOPIC_OUT), on_message,
                              lambda: len(controls) == len(want) and all(c in triggers for c, _ in controls.values()),
                              settle=300)
    worker.wait_records(before["missionwatch_records_in_total"] + len(msgs))
    after, wall = worker.metrics(), time.perf_counter() - t0
    busy = (after["missionwatch_processing_seconds_sum"] - before["missionwatch_processing_seconds_sum"]) / wall
    processed = len(msgs) / wall
    offsets.add(msgs)
    samples = []
    for pm in missions:
        if pm.mission not in controls:
            continue
        cause, arrived = controls[pm.mission]
        where = index.get((pm.mission, triggers.get(cause, pm.trigger)))
        if where is not None:
            samples.append(arrived - sent_at[where])
    # the broker alone: the same messages (at most 5 s of them) to a topic no worker reads
    hop_msgs = [(f"{tag}:{i}".encode(), v) for i, (_, v) in enumerate(msgs[:int(per_second * 5)])]
    arrivals: dict[int, float] = {}

    def on_echo(topic: str, key: bytes | None, value: bytes, now: float) -> None:
        mine, _, i = (key or b"").decode().partition(":")
        if mine == tag:  # seek_to_end may start a little early (see Offsets): another run's messages
            arrivals.setdefault(int(i), now)

    hop_sent, hop_achieved = paced(broker.bootstrap, ECHO, hop_msgs, per_second, (ECHO,), on_echo,
                                   lambda: len(arrivals) >= len(hop_msgs))
    hop = [arrivals[i] - hop_sent[i] for i in range(len(hop_msgs)) if i in arrivals]
    return Latency(tag, per_second, achieved, samples, len(missions), hop, hop_achieved, busy, processed)


# --------------------------------------------------------------- recovery
def partition_lines(s: Setup, n: int, prefix: str) -> list[bytes]:
    """n signed records of missions of 5,000 actions (about 5,500 records each), interleaved:
    one partition's log."""
    k = -(-n // 5_400)
    streams = [[dumps(s.gate.sign(r)) for r in generate(Campaign(mission_id=f"{prefix}-{i}", seed=50 + i,
                                                                  actions=5_000, subjects=1_250))]
               for i in range(k)]
    return interleave(streams)[:n]


@dataclass
class Restore:
    records: int
    replay_s: float
    """The partition fed from offset 0 (StreamCore.catch_up), as a worker without a checkpoint does."""
    dump_s: float
    """Taking the checkpoint on the event loop (Checkpoints.dump: pickling), as the worker did before
    stream/dumper.py: the loop's stall."""
    bytes: int
    load_s: float
    """StreamCore.assign: Checkpoints.load (read, SHA-256, unpickle)."""
    tail_s: float
    tail: int
    fork_stall_s: float = float("nan")
    """The longest the event loop went without a turn while a forked child (stream/dumper.py) took
    the checkpoint: the loop's stall now."""
    child_s: float = float("nan")
    """From the fork until the child's checkpoint is in place (off the loop)."""

    @property
    def restore_s(self) -> float:
        return self.load_s + self.tail_s


async def ticking(during: Callable[[], Any]) -> tuple[Any, float]:
    """Run `during()` while a coroutine ticks every 2 ms: its result, and the longest gap between ticks
    (the longest the event loop went without a turn meanwhile; tests/stream/test_dumper.py uses it too)."""
    gaps, stop = [0.0], asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.002)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(tick())
    await asyncio.sleep(0.05)
    try:
        return await during(), max(gaps)
    finally:
        stop.set()
        await task


def forked_dump(core: StreamCore, ck: Checkpoints) -> tuple[float, float]:
    """The worker's checkpoint (StreamCore.checkpoint_jobs + Dumper: a forked child pickles and writes
    it) on an event loop with a ticking coroutine: the loop's longest stall, and the child's time."""
    dumper = Dumper(ck)

    async def dump() -> float:
        t = time.perf_counter()
        child = dumper.start(core.checkpoint_jobs())
        if child is None or not await dumper.settle(child, True):
            raise SystemExit("the forked checkpoint was not taken")
        return time.perf_counter() - t

    child_s, stall = asyncio.run(ticking(dump))
    return float(stall), float(child_s)


def restore_once(s: Setup, lines: list[bytes], tail: int, where: Path) -> Restore:
    """Replay the partition up to `tail` messages before its end, checkpoint it (on the loop, then
    by a forked child: the file restored), replay the tail; restore the checkpoint into a fresh core,
    catch up the tail, and check every mission's view and history equal the replay's."""
    shutil.rmtree(where, ignore_errors=True)
    ck = Checkpoints(where)
    cut = len(lines) - tail
    core = StreamCore(s.monitor, checkpoints=ck)
    core.assign([0])
    t = time.perf_counter()
    core.catch_up(0, ((i, lines[i]) for i in range(cut)))
    head = time.perf_counter() - t
    core.activate(0)
    (due,) = core.checkpoint_jobs()
    t = time.perf_counter()
    size = len(ck.dump(due.partition, due.offset, due.monitor, due.history))
    dump_s = time.perf_counter() - t
    fork_stall_s, child_s = forked_dump(core, ck)
    t = time.perf_counter()
    core.catch_up(0, ((i, lines[i]) for i in range(cut, len(lines))))
    replay_s = head + time.perf_counter() - t
    fresh = StreamCore(s.monitor, checkpoints=ck)
    t = time.perf_counter()
    start = fresh.assign([0])[0]
    load_s = time.perf_counter() - t
    if start != cut:
        raise SystemExit(f"the checkpoint was not used (the restore starts at offset {start}, not {cut})")
    t = time.perf_counter()
    n = fresh.catch_up(0, ((i, lines[i]) for i in range(start, len(lines))))
    tail_s = time.perf_counter() - t
    fresh.activate(0)  # the views are of active partitions
    missions = [v.mission_id for v in core.views()]
    if [v.mission_id for v in fresh.views()] != missions or any(
            fresh.view(m) != core.view(m) or fresh.history(m) != core.history(m) for m in missions):
        raise SystemExit(f"{len(lines):,} records: the restored state differs from the replay's")
    return Restore(len(lines), replay_s, dump_s, size, load_s, tail_s, n, fork_stall_s, child_s)


def _median(runs: list[Restore], f: str) -> float:
    return float(statistics.median(getattr(r, f) for r in runs))


def recovery(s: Setup, sizes: Sizes, million: bool = False) -> list[Restore]:
    """Per partition length, the median (over repeats) of each part."""
    out = []
    for n in (*sizes.recovery, 1_000_000) if million else sizes.recovery:
        t = time.perf_counter()
        lines = partition_lines(s, n, f"rec{n}")
        say(f"recovery, {n:,} records: signed in {time.perf_counter() - t:.0f} s")
        reps = sizes.recovery_repeats if n == min(sizes.recovery) else 1
        runs = [restore_once(s, lines, sizes.tail, s.tmp / f"ckpt-{n}") for _ in range(reps)]
        del lines
        med = Restore(n, *(_median(runs, f) for f in ("replay_s", "dump_s")), int(_median(runs, "bytes")),
                      _median(runs, "load_s"), _median(runs, "tail_s"), runs[0].tail,
                      _median(runs, "fork_stall_s"), _median(runs, "child_s"))
        say(f"recovery, {n:,} records: replay from 0 {med.replay_s:.2f} s; checkpoint {med.bytes / 2**20:.1f} MiB, "
            f"dump on the loop {med.dump_s:.2f} s, forked: loop stall {med.fork_stall_s * 1000:.0f} ms, child "
            f"{med.child_s:.2f} s; load {med.load_s:.2f} s, tail of {med.tail:,} {med.tail_s:.2f} s; equal to the "
            f"replay ({reps} run(s))")
        out.append(med)
    return out


def extrapolate(rows: list[Restore], n: int) -> Restore:
    """A partition of n records from the two largest measured: each part linear in the records
    (the replay at the largest one's rate; the tail as measured)."""
    a, b = rows[-2], rows[-1]

    def line(f: str) -> float:
        ya, yb = float(getattr(a, f)), float(getattr(b, f))
        return max(yb + (yb - ya) / (b.records - a.records) * (n - b.records), 0.0)

    return Restore(n, b.replay_s * n / b.records, line("dump_s"), int(line("bytes")), line("load_s"), b.tail_s, b.tail,
                   b.fork_stall_s, line("child_s"))


def checkpoint_offsets(directory: Path) -> dict[int, int]:
    out = {}
    for p in directory.glob("p*.ckpt"):
        with p.open("rb") as f:
            if f.read(len(MAGIC)) == MAGIC:
                out[int(p.stem[1:])] = int(json.loads(f.readline())["offset"])
    return out


def wait_committed(bootstrap: str, group: str, ends: dict[int, int], timeout: float = 120.0) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def committed() -> dict[int, int]:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await c.start()
        try:
            return {p: int(await c.committed(TopicPartition(TOPIC_IN, p)) or 0) for p in ends}
        finally:
            await c.stop()

    deadline = time.monotonic() + timeout
    while asyncio.run(committed()) != ends:
        if time.monotonic() > deadline:
            raise SystemExit(f"the group {group} did not commit {ends} in {timeout:.0f} s")
        time.sleep(0.5)


def settled(worker: Worker, broker: EmbeddedBroker, group: str, ends: dict[int, int], data: Path) -> None:
    """Wait until the worker's group has committed `ends` and its checkpoints cover them."""
    wait_committed(broker.bootstrap, group, ends)
    deadline = time.monotonic() + 120
    while checkpoint_offsets(data / "checkpoints") != {p: e - 1 for p, e in ends.items()}:
        if time.monotonic() > deadline:
            raise SystemExit("the worker's checkpoints did not reach the end of its partitions in 120 s")
        time.sleep(0.2)


def kill9(s: Setup, per_partition: int, tail: int) -> dict[str, float]:
    """Through Kafka, on a broker of its own: a worker checkpointing every second processes
    `per_partition` signed records on each of 4 partitions and is killed with -9 once its commits
    and checkpoints cover them; `tail` more records arrive; a new worker restarts with the
    checkpoints; once it has processed the tail and checkpointed, it is killed with -9 too, the
    checkpoints are deleted, `tail` more arrive, and a third worker rebuilds from the log. Each
    restart is timed from starting the process until it serves all 4 partitions and has processed
    its tail (the log's end)."""
    extra = ("--checkpoint-every", "1", "--ledger-every", "1")
    data, group = s.tmp / "kill9", "k9"
    each = tail // PARTITIONS
    streams = []
    for i, m in enumerate(one_per_partition("k9")):
        recs = itertools.islice(generate(Campaign(mission_id=m, seed=90 + i, actions=per_partition + 2 * each,
                                                  subjects=max(per_partition // 4, 10))), per_partition + 2 * each)
        streams.append([(m.encode(), dumps(s.gate.sign(r))) for r in recs])
    msgs = interleave([x[:per_partition] for x in streams])
    tails = [interleave([x[per_partition + k * each:per_partition + (k + 1) * each] for x in streams]) for k in (0, 1)]
    offsets = Offsets()
    out: dict[str, float] = {"records_per_partition": per_partition, "tail": len(tails[0])}
    with EmbeddedBroker(port=free_port(), compat=False) as broker:
        create_topics(broker.bootstrap, PARTITIONS)
        worker = Worker(broker, s, data, group=group, extra=extra, session_timeout=4)
        try:
            out["start_empty_s"] = worker.wait_ready()
            stream._produce(broker.bootstrap, msgs)
            offsets.add(msgs)
            worker.wait_records(len(msgs))
            settled(worker, broker, group, offsets.now(), data)
            worker.kill9()
            for k, name in enumerate(("checkpoint", "log")):
                if name == "log":
                    shutil.rmtree(data / "checkpoints")
                stream._produce(broker.bootstrap, tails[k])
                offsets.add(tails[k])
                worker = Worker(broker, s, data, group=group, extra=extra, session_timeout=4)
                worker.wait_ready()
                worker.wait_records(len(tails[k]))
                out[f"restart_{name}_s"] = time.perf_counter() - worker.started
                out[f"replayed_{name}"] = worker.metrics()["missionwatch_replayed_messages_total"]
                if name == "checkpoint":
                    settled(worker, broker, group, offsets.now(), data)
                    worker.kill9()
        finally:
            worker.stop()
    say(f"kill -9 through Kafka, {per_partition:,} records per partition: first start {out['start_empty_s']:.1f} s; "
        f"restart with checkpoints {out['restart_checkpoint_s']:.1f} s ({out['replayed_checkpoint']:.0f} replayed); "
        f"without {out['restart_log_s']:.1f} s ({out['replayed_log']:.0f} replayed); {out['tail']:.0f} new records "
        "processed by each")
    return out


# ------------------------------------------------------------------ memory
_RSS_CHILD = """
import json, sys
from pathlib import Path
from benchmarks.memory import Case, replay
c = Case(**json.loads(sys.argv[1]))
run = replay(c, Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), None)
print(json.dumps({"kib": run.peak_rss_kib, "seconds": run.seconds}))
"""


def rss(s: Setup, case: memory.Case) -> dict[str, float]:
    """benchmarks/memory.py's replay (`--no-ledger`, unsigned) of `case` and of its floor case, each
    a child of a small launcher that imports only benchmarks/memory.py, as memory.py runs them. (Not a
    child of this process: Linux keeps the peak RSS of the process a child was forked from in the
    child's `ru_maxrss`, and this one holds every round's records.)"""
    from dataclasses import asdict

    out: dict[str, float] = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (str(ROOT), str(ROOT / "src"),
                                                                      os.environ.get("PYTHONPATH"))))}
    for c in (FLOOR, case):
        path = s.tmp / f"rss-{c.name}.jsonl"
        lines = memory.write_input(c, path, None)
        got = subprocess.run([sys.executable, "-c", _RSS_CHILD, json.dumps(asdict(c)), str(path), str(lines),
                              str(s.tmp / f"rss-out-{c.name}")], env=env, cwd=ROOT, capture_output=True, text=True)
        path.unlink()
        if got.returncode != 0:
            raise SystemExit(f"the replay of {c.name} failed: {got.stderr[-2000:]}")
        run = json.loads(got.stdout.splitlines()[-1])
        out[c.name] = run["kib"] * 1024
        out[f"{c.name}_seconds"] = run["seconds"]
        say(f"{c.describe()}: {lines:,} lines, {run['seconds']:.1f} s, peak RSS {run['kib'] / 1024:,.0f} MiB")
    return out


# ------------------------------------------------------------------ report
def source_state() -> str:
    """The commit the tree is at, and whether src/ holds uncommitted changes (read-only git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "src"], cwd=ROOT, capture_output=True,
                               text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "?"
    return (head or "?") + (" with uncommitted changes in src/" if dirty else "")


def ratio_text(x: float) -> str:
    return f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"


@dataclass
class Report:
    args: argparse.Namespace
    sizes: Sizes
    records: int
    rounds: list[dict[str, float]] = field(default_factory=list)
    latencies: list[Latency] = field(default_factory=list)
    restores: list[Restore] = field(default_factory=list)
    kill: dict[str, float] = field(default_factory=dict)
    memory: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    source: tuple[str, str] = ("?", "?")
    """`source_state()` at the start and at the end of the run."""

    def med(self, key: str) -> float:
        return statistics.median(r[key] for r in self.rounds)

    def ratio(self, over: str, under: str) -> tuple[float, list[float]]:
        per = [r[over] / r[under] for r in self.rounds]
        return statistics.median(per), per

    def figures(self) -> dict[str, float]:
        """Every figure by name (the smoke test checks each is there and positive)."""
        f: dict[str, float] = {k: self.med(k) for k in self.rounds[0]} if self.rounds else {}
        for over, under in RATIOS if self.rounds else ():
            f[f"{over}/{under}"] = self.ratio(over, under)[0]
        for lat in self.latencies:
            for k, v in lat.row().items():
                f[f"latency_{lat.tag}_{k}"] = v
        for r in self.restores:
            f[f"restore_{r.records}_s"] = r.restore_s
            f[f"replay_from_0_{r.records}_s"] = r.replay_s
            f[f"restore_{r.records}/replay"] = r.restore_s / r.replay_s
            f[f"dump_in_loop_{r.records}_s"] = r.dump_s
            f[f"dump_fork_stall_{r.records}_s"] = r.fork_stall_s
        for k, v in self.kill.items():
            f[f"kill9_{k}"] = v
        for k, v in self.memory.items():
            f[f"rss_{k}"] = v
        return f


RATIOS = (("core_prepared", "decode_canonicalize"), ("core_dict", "decode_canonicalize"),
          ("replay_signed", "verify"), ("replay_unsigned", "decode_canonicalize"),
          ("stream_single", "raw_single"), ("stream_batch", "raw_batch"),
          ("stream_batch_signed_items", "raw_batch_signed_items"), ("stream_single", "verify"),
          ("stream_single", "replay_signed"), ("stream_batch", "replay_unsigned"))


def recovery_text(rep: Report) -> str:
    """The subsection "Recovery after kill -9" up to its part through Kafka."""
    sz = rep.sizes
    rows = list(rep.restores)
    if len(rows) >= 2 and rows[-1].records < 1_000_000:
        rows.append(extrapolate(rows, 1_000_000))
    rec_rows = []
    for i, row in enumerate(rows):
        how = "extrapolated" if i >= len(rep.restores) else (
            f"measured, median of {sz.recovery_repeats}" if row.records == min(sz.recovery) and sz.recovery_repeats > 1
            else "measured, once")
        rec_rows.append(
            f"| {row.records:,} | {row.bytes / 2**20:,.1f} | {row.dump_s:,.2f} | **{row.fork_stall_s * 1000:,.0f}** | "
            f"{row.child_s:,.2f} | {row.load_s:,.2f} | {row.tail:,} in {row.tail_s:,.2f} | **{row.restore_s:,.2f}** | "
            f"{row.replay_s:,.1f} | **{row.restore_s / row.replay_s:.3f}** | {how} |")
    only = ""
    if rep.args.only:
        only = (f"\nThis part: `python benchmarks/throughput.py --only recovery"
                f"{' --million' if rep.args.million else ''}` on {platform.platform()}, {os.cpu_count()} CPUs, "
                f"{dt.date.today().isoformat()}; {rep.seconds / 60:.1f} minutes; source: {rep.source[1]}.\n")
    return f"""
### Recovery after kill -9
{only}
StreamCore level (no Kafka; no live ledger, no out log): one partition of signed records (missions of
5,000 actions, interleaved). Replay from 0: `StreamCore.catch_up` of every message into a fresh core,
what a worker without a checkpoint does on assignment. Restore: `StreamCore.assign` (Checkpoints.load:
read, SHA-256, unpickle) of a checkpoint taken {sz.tail:,} messages before the end, then catch-up of
that tail; then every mission's view and console history are checked equal to the replay's (the
script stops otherwise). The dump, every `--checkpoint-every` seconds (default 60): before, the
worker pickled the partitions on its event loop (`Checkpoints.dump`, the "on the loop" column: the
loop's stall); now a forked child pickles and writes them (stream/dumper.py) and the loop stalls only
for the fork: the longest gap of a coroutine ticking every 2 ms on the loop during the dump, which
the child's checkpoint then restored. The child's time is off the loop.

| records in the partition | checkpoint MiB | dump on the loop s (before) | loop stall, forked dump ms (now) | child s | load s | tail: messages in s | restore s | replay from 0 s | restore / replay | |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |
{chr(10).join(rec_rows)}

The restore is the load, which grows with the partition's state (its missions), plus the catch-up of
the tail, which depends only on the messages after the checkpoint, not on the partition's length:
at most `--checkpoint-every` x the offered load (60 s x 2,000/s = 120,000 messages at the default),
caught up at the replay's rate ({rows[-1].records / rows[-1].replay_s if rows else 0:,.0f} records/s here);
the restore then costs that much more.
"""


def kept_recovery(results_path: Path) -> str:
    """The StreamCore-level part of "Recovery after kill -9" as `results_path` holds it (a run with
    `--skip recovery` keeps it: say `--only recovery [--million]` to remeasure it), or ""."""
    old = results_path.read_text() if results_path.exists() else ""
    _, mark, rest = old.partition("\n### Recovery after kill -9\n")
    end = rest.find("\nThrough Kafka (")
    if not mark or end < 0 or "This part:" not in rest[:end]:
        return ""
    return "\n### Recovery after kill -9\n" + rest[:end] + "\n"


def section(rep: Report) -> str:
    a, sz = rep.args, rep.sizes
    n = rep.args.repeats

    def r(key: str) -> str:
        return f"{rep.med(key):,.0f}"

    def q(over: str, under: str) -> str:
        m, per = rep.ratio(over, under)
        return f"**{ratio_text(m)}**" + (f" ({', '.join(ratio_text(x) for x in per)})" if len(per) > 1 else "")

    cmd = "python benchmarks/throughput.py" + (" --quick" if a.quick else "") + (
        f" --repeats {a.repeats}" if a.repeats != sz.repeats else "")
    source = rep.source[0] if rep.source[0] == rep.source[1] else (
        f"{rep.source[0]} at the start, {rep.source[1]} at the end (processes started later ran the later code)")
    lat_rows = []
    for lat in rep.latencies:
        x = lat.row()
        what = "fixed" if lat.tag == "fixed" else (
            f"{lat.tag.removesuffix('pct')}% of the single-record maximum ({rep.med('stream_single'):,.0f}/s)")
        lat_rows.append(
            f"| {lat.offered:,.0f}/s ({what}; achieved {lat.achieved:,.0f}/s) | {lat.processed:,.0f}/s, "
            f"busy {lat.busy:.0%} | "
            f"{x['samples']:.0f} of {lat.missions} | "
            f"{x['p50_ms']:,.0f} | {x['p99_ms']:,.0f} | {x['max_ms']:,.0f} | {x['hop_p50_ms']:,.1f} | "
            f"{x['hop_p99_ms']:,.1f} | {x['p50_ms'] / x['hop_p50_ms']:,.0f}x | {x['p99_ms'] / x['hop_p99_ms']:,.0f}x |")
    k = rep.kill
    kill_text = ""
    if k:
        kill_text = f"""
Through Kafka (a broker of its own; 4 partitions of {k['records_per_partition']:,.0f} signed records, one
mission each; `missionwatch run --checkpoint-every 1 --ledger-every 1`, session timeout 4 s). The first
worker is killed with -9 once its commits and checkpoints cover the log; {k['tail']:,.0f} more records
arrive; a second worker restarts from the checkpoints, processes them, is checkpointed and killed with
-9 in turn; the checkpoints are deleted, {k['tail']:,.0f} more arrive, and a third worker rebuilds from the
log. Seconds from starting the process until it serves all 4 partitions and has processed its
{k['tail']:,.0f} new records:

| worker | seconds | messages replayed silently | / restart without checkpoints |
| --- | ---: | ---: | ---: |
| first start, empty log (process start, Faust, group join) | {k['start_empty_s']:.1f} | 0 | {k['start_empty_s'] / k['restart_log_s']:.2f} |
| restart after kill -9, with its checkpoints | {k['restart_checkpoint_s']:.1f} | {k['replayed_checkpoint']:,.0f} | **{k['restart_checkpoint_s'] / k['restart_log_s']:.2f}** |
| restart after kill -9, checkpoints deleted (rebuilt from the log) | {k['restart_log_s']:.1f} | {k['replayed_log']:,.0f} | 1.00 |

A restart also waits for the group to drop the killed member (its 4 s session) and rejoin; the
first start does not. With checkpoints, nothing is replayed silently: the checkpoints cover the
committed offsets, and the new records are processed live.
"""
    mem = rep.memory
    case = sz.rss
    mem_text = ""
    if mem:
        above = mem[case.name] - mem[FLOOR.name]
        mem_text = f"""
### Memory: {case.describe()}, one core

benchmarks/memory.py's case, unsigned, fed to a streaming worker's state as `missionwatch run` feeds
it (`StreamCore.process` of every line, one partition, no ledger, no out log: each mission's monitor
and console history) in a child process that imported the worker's modules (Faust, aiokafka); only
Kafka is absent. Peak RSS from the kernel.

| measure | MiB | beside | MiB | ratio |
| --- | ---: | --- | ---: | ---: |
| peak RSS, {case.missions:,} missions x {case.cohorts} cohorts ({mem[case.name + '_seconds']:.0f} s) | {mem[case.name] / 2**20:,.0f} | the floor: 200 receipts fed the same way (interpreter, imports) | {mem[FLOOR.name] / 2**20:,.0f} | **{mem[case.name] / mem[FLOOR.name]:.1f}x** |

Above the floor: {above / 2**20:,.0f} MiB, **{above / case.missions:,.0f} bytes per mission**
({above / case.missions / (case.cohorts or 1):,.0f} per mission and cohort).
"""
    lat_text = ""
    if rep.latencies:
        lat_text = f"""
### Produce-to-control latency

The demo spec (discount fairness rule set to pause); missions of {sz.latency_actions:,} actions whose
agent never offers customers aged 65+ a discount, each cut after the record that tips its pause
(found by a replay of the same records: about 600 records in); signed records, one per message,
four missions at a time (the next starting where one ends, so the pauses spread over the run),
produced at the offered load (aiokafka, acks=all, what is due every 5 ms).
Latency: from just before `send` of the triggering record to the arrival of the mission's
`paused` control record at a consumer of missionwatch.control (fetch wait {LATENCY_FETCH_WAIT_MS} ms; the
worker's is 50 ms). One pause per mission, so one sample per mission; the p99 of so few samples is
about their maximum. Beside it, the broker's one hop: the same messages (at most 5 s of them) at
the same load to a topic no worker reads, produce -> consume, every message a sample. Worker:
records/s from the first produced to the last processed (below the offered load: it fell behind,
and the latency is mostly the queue, growing with the run's length), and the share of that time it
spent processing messages (`missionwatch_processing_seconds`); the rest is Faust, the fetches and
the publishes, on 2 CPUs shared with the producer and the broker.

| offered load | worker: processed, busy | samples | p50 ms | p99 ms | max ms | one hop p50 ms | one hop p99 ms | p50 / hop | p99 / hop |
| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |
{chr(10).join(lat_rows)}
"""
    rec_text = (recovery_text(rep) if rep.restores else kept_recovery(a.results) if "recovery" in a.skip else "") \
        + kill_text

    return f"""## Throughput

`{cmd}` on {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()},
{dt.date.today().isoformat()}; {rep.seconds / 60:.1f} minutes in all; source: {source}. What runs and how:
the script's docstring. Figures 1-6 are medians of {n} interleaved round(s) over the same {rep.records:,} records of 4
simulated retention missions (one per partition; {sz.actions:,} actions each) under the demo spec; the
stream figures come from one `missionwatch run` worker (defaults but `--checkpoint-every 0`: see the dump
below) on the embedded Tansu broker without its compatibility listener; ratios per round in brackets.

| # | measure | records/s | beside (its ceiling) | records/s | ratio |
| --- | --- | ---: | --- | ---: | ---: |
| 1 | raw consume + decode, one record per message (aiokafka, `json.loads`) | {r('raw_single')} | - | - | - |
| 1 | raw consume + decode, batch envelopes of 500 | {r('raw_batch')} | - | - | - |
| 2 | bare Ed25519 verify, one core | {r('verify')} | - | - | - |
| 3 | decode + canonicalize (`json.loads`, `canonical_bytes`) | {r('decode_canonicalize')} | - | - | - |
| 4 | core alone: `Monitor.feed(Prepared)`, unsigned, intake done beforehand | {r('core_prepared')} | decode + canonicalize | {r('decode_canonicalize')} | {q('core_prepared', 'decode_canonicalize')} |
| 4 | `Monitor.feed(dict)`, unsigned, `allow_unsigned` | {r('core_dict')} | decode + canonicalize | {r('decode_canonicalize')} | {q('core_dict', 'decode_canonicalize')} |
| 5 | replay, signed (`workers=0`) | {r('replay_signed')} | Ed25519 verify | {r('verify')} | {q('replay_signed', 'verify')} |
| 5 | replay, unsigned (`allow_unsigned`, `workers=0`) | {r('replay_unsigned')} | decode + canonicalize | {r('decode_canonicalize')} | {q('replay_unsigned', 'decode_canonicalize')} |
| 6 | stream, one signed record per message | {r('stream_single')} | raw consume + decode | {r('raw_single')} | {q('stream_single', 'raw_single')} |
| 6 | stream, signed batch envelopes of 500, items unsigned (the gate's) | {r('stream_batch')} | raw consume + decode | {r('raw_batch')} | {q('stream_batch', 'raw_batch')} |
| 6 | stream, signed batch envelopes of 500, items signed too (stream.py's) | {r('stream_batch_signed_items')} | raw consume + decode | {r('raw_batch_signed_items')} | {q('stream_batch_signed_items', 'raw_batch_signed_items')} |

Beside other ceilings: stream, one signed record per message / Ed25519 verify {q('stream_single', 'verify')};
/ signed replay {q('stream_single', 'replay_signed')}. Stream, gate batches / unsigned replay
{q('stream_batch', 'replay_unsigned')}.
The raw consumer reads what the worker has already processed, alone; the stream figures run
producer, broker and worker at once on the {os.cpu_count()} CPUs.

The longest the worker took to answer /metrics during each stream run (its event loop without a
turn), median over rounds: one record per message {rep.med('stall_single'):.1f} s; batches
{rep.med('stall_batch'):.1f} s; batches with signed items {rep.med('stall_batch_signed_items'):.1f} s. The agent
(stream/app.py) processes a whole take (up to `--batch` 500 messages: with envelopes of 500, up to
250,000 records) without awaiting anything that suspends, so the web server, the timers and the
producer's sends wait until the take is done.
{lat_text}{rec_text}{mem_text}"""


# -------------------------------------------------------------------- main
def setup(tmp: Path) -> Setup:
    specs = write_demo_specs(ROOT / "detectors", tmp / "specs")  # a discount gap pauses the mission
    gate, monitor_key = Signer.generate("gate-1"), Signer.generate("monitor-1")
    ring = Keyring()
    ring.add("gate-1", gate.public_key, "gate")
    keys_path, monitor_pem = tmp / "keyring.json", tmp / "monitor.pem"
    keys_path.write_text(json.dumps(ring.to_json()))
    write_private_key(monitor_key, monitor_pem)
    return Setup(tmp, specs, SpecRegistry.load_dir(specs), gate, monitor_key, ring, keys_path, monitor_pem)


def only_recovery(args: argparse.Namespace, sizes: Sizes, started: float, first_source: str) -> None:
    """`--only recovery`: the StreamCore-level recovery figures, written over that part of the
    "Recovery after kill -9" subsection of the Throughput section (the rest stays as it was)."""
    with tempfile.TemporaryDirectory(prefix="mw-throughput-") as tmp_dir:
        rep = Report(args, sizes, 0)
        rep.restores = recovery(setup(Path(tmp_dir)), sizes, args.million)
    rep.seconds = time.perf_counter() - started
    rep.source = (first_source, source_state())
    text = recovery_text(rep)
    old = args.results.read_text() if args.results.exists() else ""
    head, mark, rest = old.partition("\n### Recovery after kill -9\n")
    if not mark or "## Throughput" not in head:
        raise SystemExit(f"{args.results} has no Throughput section with a recovery part: run the whole benchmark")
    ends = [i for i in (rest.find("\nThrough Kafka ("), rest.find("\n### "), rest.find("\n## ")) if i >= 0]
    tail = rest[min(ends):] if ends else ""
    args.results.write_text(head + text.rstrip("\n") + "\n" + tail)
    if args.json:
        args.json.write_text(json.dumps(rep.figures(), indent=1, sort_keys=True) + "\n")
    print(text, flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smoke run: every figure once, at a tiny size")
    ap.add_argument("--repeats", type=int, default=None, help="rounds of figures 1-6 (default 3; --quick: 1)")
    ap.add_argument("--results", type=Path, default=results.RESULTS, help="the RESULTS.md to write the section into")
    ap.add_argument("--json", type=Path, default=None, help="also write every figure here, as JSON")
    ap.add_argument("--skip", nargs="*", default=[], choices=["latency", "recovery", "kill9", "memory"],
                    help="leave these figures out (for working on the others; with recovery, the StreamCore-level recovery part an `--only recovery` run wrote is kept)")
    ap.add_argument("--only", choices=["recovery"], default=None,
                    help="run only these figures (recovery: the StreamCore level, whose part of the "
                         "section it rewrites, leaving the rest as it was)")
    ap.add_argument("--million", action="store_true",
                    help="recovery at 10^6 records in the partition too, measured (about 15 minutes more: "
                         "the replay from 0 that builds the state); else extrapolated")
    args = ap.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    args.repeats = args.repeats or sizes.repeats
    started, first_source = time.perf_counter(), source_state()
    if args.only:
        only_recovery(args, sizes, started, first_source)
        return
    with tempfile.TemporaryDirectory(prefix="mw-throughput-") as tmp_dir:
        s = setup(Path(tmp_dir))
        with EmbeddedBroker(port=free_port(), compat=False) as broker:
            create_topics(broker.bootstrap, PARTITIONS)
            create_topics(broker.bootstrap, PARTITIONS, (ECHO,))
            offsets = Offsets()
            # the worker starts while the records are made (its start is timed by the kill -9 figure)
            worker = Worker(broker, s, s.tmp / "data", extra=("--checkpoint-every", "0"))
            try:
                base = base_records(sizes.actions)
                rep = Report(args, sizes, sum(len(b) for b in base))
                say(f"{rep.records:,} records per round; signing...")
                rounds = []
                for i in range(args.repeats):  # distinct missions per round and kind: a repeat would be duplicates
                    sets = {kind: record_set(base, f"r{i}-{kind}", s.gate)
                            for kind in ("single", "batch", "batch_signed_items")}
                    msgs = {"single": sets["single"].single(), "batch": sets["batch"].batches(sign_items=False),
                            "batch_signed_items": sets["batch_signed_items"].batches(sign_items=True)}
                    rounds.append((sets, msgs, sets["single"].unsigned()))
                worker.wait_ready()
                warm = record_set([b[:sizes.warm] for b in base], "warm", s.gate)  # first-use costs, untimed
                warm_msgs = warm.single()
                in_process(s, [v for _, v in warm_msgs], warm.unsigned())
                timed(worker, broker.bootstrap, warm_msgs, warm.records)
                offsets.add(warm_msgs)
                for i, (sets, msgs, unsigned) in enumerate(rounds):
                    got = in_process(s, [v for _, v in msgs["single"]], unsigned)
                    got |= stream_round(broker, worker, offsets, sets, msgs)
                    rep.rounds.append(got)
                    say(f"round {i + 1}: " + ", ".join(f"{k} {v:,.1f} s" if k.startswith("stall") else f"{k} {v:,.0f}/s"
                                                       for k, v in got.items()))
                if worker.rejected():
                    raise SystemExit(f"the worker rejected records: {worker.metrics()}")
                rounds.clear()
                if "latency" not in args.skip:
                    top = rep.med("stream_single")
                    loads = (("fixed", FIXED_RATE), ("80pct", 0.8 * top), ("40pct", 0.4 * top))
                    for j, (tag, offered) in enumerate(loads):
                        missions = pause_missions(s, f"lat{j}", sizes.latency_missions, sizes.latency_actions,
                                                  1_000 * (j + 1))
                        lat = latency(broker, worker, offsets, missions, offered, tag)
                        rep.latencies.append(lat)
                        x = lat.row()
                        say(f"latency at {offered:,.0f}/s (achieved {lat.achieved:,.0f}/s): {x['samples']:.0f} pauses, "
                            f"p50 {x['p50_ms']:.0f} ms, p99 {x['p99_ms']:.0f} ms; one hop p50 {x['hop_p50_ms']:.1f} ms, "
                            f"p99 {x['hop_p99_ms']:.1f} ms")
            finally:
                worker.stop()
        if "recovery" not in args.skip:
            rep.restores = recovery(s, sizes, args.million)
        if "kill9" not in args.skip:
            rep.kill = kill9(s, sizes.kill_records, sizes.tail)
        if "memory" not in args.skip:
            rep.memory = rss(s, sizes.rss)
    rep.seconds = time.perf_counter() - started
    rep.source = (first_source, source_state())
    text = section(rep)
    results.RESULTS = args.results  # write_section writes there
    results.write_section("Throughput", text)
    if args.json:
        args.json.write_text(json.dumps(rep.figures(), indent=1, sort_keys=True) + "\n")
    print(text, flush=True)


if __name__ == "__main__":
    main()
