"""Every ordinary Kafka client talks to the embedded broker, with nothing in between but what
`missionwatch broker` and `run` start themselves: Debian's kcat (librdkafka 2.0), confluent-kafka
(its own librdkafka), kafka-python and aiokafka (the worker) each produce a mission's receipts
into missionwatch.in and read its pause back from missionwatch.control."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from missionwatch.signing import Keyring
from missionwatch.sim import Campaign, write_campaign
from missionwatch.stream.broker import EmbeddedBroker
from missionwatch.stream.compat import strip_api_versions_tags
from missionwatch.stream.demo import write_demo_specs
from missionwatch.verify import check_out_record
from tests.conftest import SPECS
from tests.stream.conftest import Worker

IN, CONTROL = "missionwatch.in", "missionwatch.control"
Lines = list[tuple[bytes, bytes]]


def kcat_produce(bootstrap: str, lines: Lines) -> None:
    kcat = shutil.which("kcat")
    assert kcat, "kcat is missing: `make test` installs it (apt-get install kcat)"
    subprocess.run([kcat, "-b", bootstrap, "-P", "-t", IN, "-K", "\t"],
                   input=b"".join(k + b"\t" + v + b"\n" for k, v in lines), check=True, timeout=60)


def kcat_consume(bootstrap: str) -> list[tuple[bytes, bytes]]:
    out = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", CONTROL, "-o", "beginning", "-e", "-q",
                          "-f", "%k\t%s\n"], capture_output=True, check=True, timeout=60)
    return [tuple(ln.split(b"\t", 1)) for ln in out.stdout.splitlines()]  # type: ignore[misc]


def confluent_produce(bootstrap: str, lines: Lines) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
    for k, v in lines:
        p.produce(IN, key=k, value=v)
        p.poll(0)
    assert p.flush(60) == 0


def confluent_consume(bootstrap: str) -> list[tuple[bytes, bytes]]:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-confluent", "enable.auto.commit": False})
    try:
        c.assign([TopicPartition(CONTROL, p, OFFSET_BEGINNING) for p in range(4)])
        got, deadline = [], time.monotonic() + 5
        while time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.key(), m.value()))
        return got
    finally:
        c.close()


def kafka_python_produce(bootstrap: str, lines: Lines) -> None:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap)
    try:
        for k, v in lines:
            p.send(IN, key=k, value=v)
        p.flush(60)
    finally:
        p.close()


def kafka_python_consume(bootstrap: str) -> list[tuple[bytes, bytes]]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        parts = [TopicPartition(CONTROL, p) for p in range(4)]
        c.assign(parts)
        c.seek_to_beginning(*parts)
        return [(m.key, m.value) for m in c]
    finally:
        c.close()


CLIENTS: dict[str, tuple[Callable[[str, Lines], None], Callable[[str], list[tuple[bytes, bytes]]]]] = {
    "kcat": (kcat_produce, kcat_consume),
    "confluent-kafka": (confluent_produce, confluent_consume),
    "kafka-python": (kafka_python_produce, kafka_python_consume),
}


@pytest.fixture(scope="module")
def worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("clients")
    paths = {m: write_campaign(Campaign(mission_id=m, seed=7, actions=6000, subjects=1600,
                                        discount_gap="age_band=65+", discount_gap_factor=0.4),
                               root / m, seed_keys=True) for m in CLIENTS}
    first = paths["kcat"]
    w = Worker(broker, root / "data", first["keyring"], first["monitor-1"], group="clients",
               specs=write_demo_specs(SPECS, root / "specs"))
    try:
        w.wait_assigned(want=4)
        yield {"paths": paths, "worker": w, "keyring": Keyring.load(first["keyring"])}
    finally:
        assert w.stop() == 0


@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_client_produces_receipts_and_reads_the_pause(client: str, worker: dict[str, Any],
                                                       broker: EmbeddedBroker) -> None:
    produce, consume = CLIENTS[client]
    lines = [(client.encode(), ln) for ln in worker["paths"][client]["receipts"].read_bytes().splitlines()
             if ln.strip()]
    produce(broker.bootstrap, lines)
    mine: list[dict[str, Any]] = []
    deadline = time.monotonic() + 90
    while not mine and time.monotonic() < deadline:
        mine = [json.loads(v) for k, v in consume(broker.bootstrap) if k == client.encode()]
        time.sleep(0.5)
    assert [(c["mission_id"], c["state"]) for c in mine] == [(client, "paused")]
    assert isinstance(check_out_record(mine[0], worker["keyring"]), tuple)  # signed by the monitor


def _response(entries: list[tuple[int, int, int, bytes]], tail: bytes) -> bytes:
    """An ApiVersions v3 response: correlation id 7, no error, the entries (key, min, max, their
    tag buffer), throttle 0, then `tail` (the top-level tag buffer)."""
    body = (7).to_bytes(4, "big") + b"\x00\x00" + bytes([len(entries) + 1])
    for key, lo, hi, tags in entries:
        body += key.to_bytes(2, "big") + lo.to_bytes(2, "big") + hi.to_bytes(2, "big") + tags
    return body + b"\x00\x00\x00\x00" + tail


def test_api_versions_lose_only_their_trailing_tagged_fields() -> None:
    entries = [(0, 0, 9, b"\x00"), (18, 0, 3, b"\x01\x05\x02ab")]  # one entry carries a tagged field
    features = b"\x02\x00\x03abc\x01\x08" + b"\x00" * 8  # SupportedFeatures, FinalizedFeaturesEpoch-ish
    assert strip_api_versions_tags(_response(entries, features)) == _response(entries, b"\x00")
    assert strip_api_versions_tags(_response(entries, b"\x00")) == _response(entries, b"\x00")
    cut = _response(entries, features)[:9]  # not a whole response: passed on as it is
    assert strip_api_versions_tags(cut) == cut
