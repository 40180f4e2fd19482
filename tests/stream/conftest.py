"""Real parts for the streaming tests: the embedded broker, started here, and workers
run as `missionwatch run` subprocesses (so kill -9 is a real kill)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.replay import replay_lines
from missionwatch.signing import Keyring, Signer
from missionwatch.spec import SpecRegistry
from missionwatch.stream.broker import EmbeddedBroker, create_topics, free_port, stop_process_group
from missionwatch.stream.http import parse_metrics
from tests.conftest import SPECS


@pytest.fixture(scope="module")
def broker() -> Iterator[EmbeddedBroker]:
    with EmbeddedBroker(port=free_port()) as b:
        create_topics(b.bootstrap, 4)
        yield b


KILLED_SESSION_TIMEOUT = 4.0
"""The session timeout (s) of the workers of a group in which a test kills one with -9: the
group moves a dead worker's partitions once sessions have expired, and the test waits for
that (the default is 10 s; the broker goes by the survivors' timeout as well as the dead one's)."""


class Worker:
    def __init__(self, broker: EmbeddedBroker, data: Path, keys: Path, signing_key: Path, group: str,
                 specs: Path = SPECS, session_timeout: float | None = None, extra: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        data.mkdir(parents=True, exist_ok=True)
        self.log_path = data / f"worker-{self.port}.log"
        self.log = self.log_path.open("wb")
        cmd = [sys.executable, "-m", "missionwatch.cli", "run", "--broker", broker.url, "--data", str(data),
               "--web-port", str(self.port), "--keys", str(keys), "--signing-key", str(signing_key),
               "--specs", str(specs), "--loglevel", "info", *extra]
        env = {**os.environ, "MISSIONWATCH_APP_ID": group}
        if session_timeout is not None:
            env["MISSIONWATCH_SESSION_TIMEOUT"] = str(session_timeout)
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def partitions(self) -> list[int]:
        try:
            code, body = self.get("/healthz")
        except OSError:
            return []
        return list(json.loads(body)["partitions"]) if code == 200 else []

    def metrics(self) -> dict[str, float]:
        """/metrics as {'name' or 'name{labels}': value}, the # lines left out."""
        return parse_metrics(self.get("/metrics")[1])

    def metric(self, name: str) -> float:
        return self.metrics()[name]

    def wait_assigned(self, timeout: float = 120.0, want: int = 1) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the worker exited with {self.proc.returncode}"
            got = self.partitions()
            if len(got) >= want:
                return got
            time.sleep(0.25)
        raise AssertionError(f"no partitions after {timeout} s")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> int:
        stop_process_group(self.proc, grace=30)
        self.log.close()
        return self.proc.returncode


def mission_key(line: bytes) -> bytes:
    rec = json.loads(line)
    if rec.get("schema") == "missionwatch/batch@1":
        rec = (rec.get("items") or [{}])[0]
    return str(rec.get("mission_id", "")).encode()


def produce(bootstrap: str, lines: list[bytes], key: bytes | None = None) -> None:
    from aiokafka import AIOKafkaProducer

    async def go() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        try:
            for line in lines:
                try:
                    k = key if key is not None else mission_key(line)
                except ValueError:
                    k = b"junk"
                await p.send(topic="missionwatch.in", value=line, key=k)
            await p.flush()
        finally:
            await p.stop()

    asyncio.run(go())


def produce_to(bootstrap: str, topic: str, values: list[bytes]) -> None:
    """Publish `values` to `topic`, keyed by their mission_id, and wait until the broker has them."""
    from aiokafka import AIOKafkaProducer

    async def go() -> None:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await p.start()
        try:
            for v in values:
                await p.send_and_wait(topic, value=v, key=str(json.loads(v).get("mission_id", "")).encode())
        finally:
            await p.stop()

    asyncio.run(go())


def consume(bootstrap: str, topic: str, *, until: int = 0, timeout: float = 60.0, quiet: float = 1.5) -> list[Any]:
    """Every message of `topic` from the start: (partition, offset, key, value); stops when at
    least `until` were read and nothing new came for `quiet` seconds."""
    from aiokafka import AIOKafkaConsumer

    async def go() -> list[Any]:
        c = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None)
        await c.start()
        out: list[Any] = []
        try:
            deadline = time.monotonic() + timeout
            last = time.monotonic()
            while time.monotonic() < deadline:
                got = await c.getmany(timeout_ms=200)
                for msgs in got.values():
                    out.extend((m.partition, m.offset, m.key, m.value) for m in msgs)
                    last = time.monotonic()
                if len(out) >= until and time.monotonic() - last > quiet:
                    break
            return out
        finally:
            await c.stop()

    return asyncio.run(go())


def wait_committed(bootstrap: str, group: str, at_least: int, timeout: float = 60.0) -> int:
    """Wait until the group has committed offsets of missionwatch.in summing to `at_least`."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def total() -> int:
        c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await c.start()
        try:
            parts = c.partitions_for_topic("missionwatch.in") or set()
            offs = [await c.committed(TopicPartition("missionwatch.in", p)) for p in sorted(parts)]
            return sum(o for o in offs if o is not None and o > 0)
        finally:
            await c.stop()

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = asyncio.run(total())
        if n >= at_least:
            return n
        time.sleep(0.5)
    raise AssertionError(f"the group {group} committed fewer than {at_least} offsets in {timeout} s")


def replay_monitor(lines: list[bytes], keyring: Path, signer: Signer, specs: Path = SPECS, *,
                   feed: bool = True) -> Monitor:
    """A core like the workers' (fed `lines`, unless `feed` is False)."""
    m = Monitor(SpecRegistry.load_dir(specs), signer=signer, keyring=Keyring.load(keyring))
    if feed:
        replay_lines(m, lines)
    return m


def expected_events(lines: list[bytes], keyring: Path, signer: Signer, specs: Path = SPECS, *,
                    monitor: Monitor | None = None) -> tuple[dict[str, list[dict[str, Any]]], Counter[str]]:
    """What a replay of `lines` issues, per mission, and the rejection codes. The replay goes
    through `monitor` (a fresh `replay_monitor(..., feed=False)`) if given: it is then
    `replay_monitor(lines, ...)`, for a test to read its state."""
    m = monitor if monitor is not None else replay_monitor(lines, keyring, signer, specs, feed=False)
    result = replay_lines(m, lines)
    by_mission: dict[str, list[dict[str, Any]]] = {}
    for e in result.events:
        by_mission.setdefault(e["mission_id"], []).append(e)
    return by_mission, Counter(r["code"] for r in result.rejected)


def rec_key(rec: dict[str, Any]) -> tuple[str, int | str]:
    """An out record's place: (mission, seq), or (mission, "checkpoint N") for a checkpoint of
    the mission's transparency log (outside the chain: no seq)."""
    return rec["mission_id"], rec["seq"] if "seq" in rec else f"checkpoint {rec['tree_size']}"


def published(boot: str, expected_total: int) -> dict[tuple[str, int | str], list[bytes]]:
    """Every copy of each (mission, seq) on missionwatch.out and .control, once at least
    `expected_total` distinct ones are there (or after 90 s)."""
    got: dict[tuple[str, int | str], list[bytes]] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        got = {}
        for topic in ("missionwatch.out", "missionwatch.control"):
            for _, _, key, value in consume(boot, topic, quiet=1.0):
                rec = json.loads(value)
                assert key == rec["mission_id"].encode()
                got.setdefault(rec_key(rec), []).append(value)
        if len(got) >= expected_total:
            return got
        time.sleep(1)
    return got
