"""What the hostile streaming tests share: keys, the poison messages users sent, a worker whose
core raises on a marked message, a producer for messages beyond Kafka's 1 MB default, and
the oracle (a `StreamCore` fed the same messages at the same offsets, no Kafka)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from missionwatch.signing import Keyring, Signer, write_private_key
from missionwatch.spec import SpecRegistry
from missionwatch.stream.broker import EmbeddedBroker, create_topics, free_port
from missionwatch.stream.core import Publish, StreamCore
from tests.conftest import SPECS, action, registration
from tests.hostile.raising_worker import MARKER, RaisingMonitor
from tests.stream.conftest import Worker

MISSION = "m-poison"


@pytest.fixture(name="broker")
def broker_fixture() -> Iterator[EmbeddedBroker]:
    """A broker of its own per test: each test reads its topics from offset 0."""
    with EmbeddedBroker(port=free_port()) as b:
        create_topics(b.bootstrap, 4)
        yield b


@dataclass
class Keys:
    gate: Signer
    monitor: Signer
    keyring: Path
    monitor_pem: Path


@pytest.fixture(name="keys")
def keys_fixture(tmp_path: Path) -> Keys:
    gate, monitor = Signer.generate("gate-1"), Signer.generate("monitor")
    ring = Keyring()
    ring.add("gate-1", gate.public_key, "gate")
    ring.add("monitor", monitor.public_key, "monitor")
    (tmp_path / "keyring.json").write_text(json.dumps(ring.to_json()))
    write_private_key(monitor, tmp_path / "monitor.pem")
    return Keys(gate, monitor, tmp_path / "keyring.json", tmp_path / "monitor.pem")


def dumps(rec: dict[str, Any]) -> bytes:
    return json.dumps(rec, separators=(",", ":")).encode()


def signed_batch(gate: Signer, first: int, n: int, mission: str = MISSION, tag: str = "r") -> bytes:
    """n signed actions two hours apart (a strategy receipt falls due once a day has passed),
    with receipt ids TAG-i."""
    items = [{**action(i, mission=mission, t=i * 7200), "receipt_id": f"{tag}-{i}"} for i in range(first, first + n)]
    return dumps(gate.sign({"schema": "missionwatch/batch@1", "batch_id": f"b-{tag}-{first}", "items": items}))


def poison(gate: Signer) -> dict[str, bytes]:
    """The messages users reported, each named, with the mission's registration first."""
    huge = dumps({**action(0, mission=MISSION), "receipt_id": "r-huge"}).replace(
        b'"attributes":{}', b'"attributes":{"n":' + b"9" * 5000 + b"}")
    assert b"9" * 5000 in huge
    return {
        "registration": dumps(gate.sign(registration(MISSION))),
        "5000 digits": huge,
        "-1e308 discount": dumps(gate.sign(action(1, mission=MISSION, action_type="offer.discount",
                                                  discount_pct=-1e308))),
        "10 MB": b'{"schema":"missionwatch/action@1","mission_id":"' + MISSION.encode() + b'","pad":"'
                 + b"x" * (10 * 1024 * 1024) + b'"}',
        "valid batch": signed_batch(gate, 2, 20),
        "core raises": b'{"schema":"missionwatch/action@1","mission_id":"' + MISSION.encode() + b'","note":"'
                       + MARKER + b'"}',
    }


def produce(bootstrap: str, values: list[bytes], key: bytes = MISSION.encode()) -> list[tuple[int, int]]:
    """Publish `values` in order under one key; (partition, offset) of each. The producer takes
    records of up to 32 MB (the embedded broker accepts them; real Kafka needs the topic's
    max.message.bytes raised)."""
    from aiokafka import AIOKafkaProducer

    async def go() -> list[tuple[int, int]]:
        p = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=32 * 1024 * 1024)
        await p.start()
        try:
            out = []
            for v in values:
                md = await p.send_and_wait("missionwatch.in", value=v, key=key)
                out.append((md.partition, md.offset))
            return out
        finally:
            await p.stop()

    return asyncio.run(go())


def oracle(keys: Keys, messages: list[tuple[int, int, bytes]], **limits: Any) -> tuple[StreamCore, list[Publish]]:
    """What a worker publishes for `messages` (partition, offset, value), computed without Kafka."""
    from missionwatch.admission import Limits

    registry = SpecRegistry.load_dir(SPECS)
    ring = Keyring.load(keys.keyring)
    core = StreamCore(lambda: RaisingMonitor(registry, signer=keys.monitor, keyring=ring, limits=Limits(**limits)))
    core.assign(sorted({p for p, _, _ in messages}))
    for p in core.partitions:
        core.activate(p)
    return core, [pub for p, o, v in messages for pub in core.process(p, o, v)]


class RaisingWorker(Worker):
    """`missionwatch run` (settings from MISSIONWATCH_* variables) with `RaisingMonitor` as its core."""

    def __init__(self, broker: EmbeddedBroker, data: Path, keys: Keys, group: str, **settings: Any) -> None:
        self.port = free_port()
        data.mkdir(parents=True, exist_ok=True)
        self.log_path = data / f"worker-{self.port}.log"
        self.log = self.log_path.open("wb")
        env = {**os.environ, "MISSIONWATCH_BROKER": broker.url, "MISSIONWATCH_DATA": str(data),
               "MISSIONWATCH_WEB_PORT": str(self.port), "MISSIONWATCH_KEYS": str(keys.keyring),
               "MISSIONWATCH_SIGNING_KEY": str(keys.monitor_pem), "MISSIONWATCH_SPECS": str(SPECS),
               "MISSIONWATCH_APP_ID": group,
               **{f"MISSIONWATCH_{k.upper()}": str(v) for k, v in settings.items()}}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.hostile.raising_worker"], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def health(self) -> tuple[int, dict[str, Any]]:
        code, body = self.get("/healthz")
        return code, json.loads(body)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def rows(values: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(v) for v in values]
