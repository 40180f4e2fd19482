"""Poison messages never stop the streaming service.

Users sent a 5,000-digit integer, a discount of -1e308, a 10 MB message (whose rejected row,
holding the whole message, was beyond the producer's request size: Faust restarted the
crashed agent and acked the batch it held, so the valid batch behind it was lost), and the
worker died on every catch-up after a restart. Here the same messages, and one that makes
the core raise (`RaisingMonitor`: `Monitor.feed` itself turns every failure into a rejection,
so no real input makes the core raise any more), go through the real embedded broker and a
real worker, which is then killed with kill -9 and restarted.

The shell's own guards are tested without Kafka first: `StreamCore` with a raising core, the
publisher with topics that refuse records, /healthz with the states it reports."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from missionwatch.admission import Limits
from missionwatch.signing import Keyring
from missionwatch.spec import SpecRegistry
from missionwatch.stream.core import IN, OUT, REJECTED, Publish, StreamCore
from missionwatch.stream.http import Health, healthz
from tests.conftest import SPECS
from tests.hostile.raising_worker import RaisingMonitor
from tests.hostile.stream_kit import (  # noqa: F401  (broker, keys: fixtures)
    MISSION,
    Keys,
    RaisingWorker,
    broker_fixture,
    keys_fixture,
    oracle,
    poison,
    produce,
    rows,
    signed_batch,
)
from tests.stream.conftest import KILLED_SESSION_TIMEOUT, consume, wait_committed


def _core(keys: Keys, *, max_publish_bytes: int = 1_000_000, **limits: Any) -> StreamCore:
    ring = Keyring.load(keys.keyring)
    core = StreamCore(lambda: RaisingMonitor(SpecRegistry.load_dir(SPECS), signer=keys.monitor, keyring=ring,
                                             limits=Limits(**limits)), max_publish_bytes=max_publish_bytes)
    core.assign([0])
    core.activate(0)
    return core


# --- without Kafka --------------------------------------------------------------------------

def test_each_poison_message_is_one_bounded_rejection_and_the_partition_moves_on(keys: Keys) -> None:
    core = _core(keys)
    msgs = poison(keys.gate)
    got = {name: core.process(0, offset, value) for offset, (name, value) in enumerate(msgs.items())}
    codes = {name: [json.loads(p.value).get("code") for p in pubs if p.topic == REJECTED] for name, pubs in got.items()}
    assert codes == {"registration": [], "5000 digits": ["number_out_of_range"],
                     "-1e308 discount": ["number_out_of_range"], "10 MB": ["message_too_large"],
                     "valid batch": [], "core raises": ["internal_error"]}
    assert [p.topic for p in got["valid batch"]] == [OUT]  # a strategy receipt
    for pubs in got.values():
        assert all(len(p.value) < 8 * 1024 for p in pubs if p.topic == REJECTED)
    assert "[cut: 10,485," in json.loads(got["10 MB"][0].value)["record"]
    assert core.metrics.internal_errors == 1
    assert core.metrics.last_internal_error == {"partition": 0, "offset": 5, "during": "live",
                                                "reason": json.loads(got["core raises"][0].value)["reason"]}
    assert core.next_offset[0] == 6 and core.metrics.messages_in == 6 and core.metrics.records_in == 25
    nxt = core.process(0, 6, signed_batch(keys.gate, 22, 20))
    assert core.metrics.records_in == 45 and all(p.topic == OUT for p in nxt)


def test_catch_up_survives_what_the_core_raises_and_counts_it(keys: Keys) -> None:
    core = _core(keys)
    core.active.clear()  # a fresh assignment: not yet active
    msgs = list(poison(keys.gate).values())
    assert core.catch_up(0, enumerate(msgs)) == len(msgs)
    assert core.next_offset[0] == len(msgs)
    assert core.metrics.internal_errors == 1 and core.metrics.last_internal_error is not None
    assert core.metrics.last_internal_error["during"] == "catch-up"
    assert core.catch_up(7, [(0, b"{}")]) == 0  # a partition a newer rebalance took: left alone
    # the state equals that of a core that processed them live
    live = _core(keys)
    for offset, value in enumerate(msgs):
        live.process(0, offset, value)
    assert core.ledger(MISSION) is None  # not active yet
    core.activate(0)
    assert core.ledger(MISSION) == live.ledger(MISSION)


def test_records_too_large_to_publish_are_replaced_by_bounded_rows(keys: Keys) -> None:
    msgs = poison(keys.gate)
    # an excerpt setting larger than the producer takes: the rejected row is kept, its excerpt cut
    core = _core(keys, excerpt_chars=3_000_000)
    [row] = core.process(0, 0, msgs["10 MB"])
    assert len(row.value) < 2048 and json.loads(row.value)["code"] == "message_too_large"
    # an out record larger than the producer takes: an internal_error rejection of its message
    small = _core(keys, max_publish_bytes=3000)
    small.process(0, 0, msgs["registration"])
    [replaced] = small.process(0, 1, msgs["valid batch"])
    rec = json.loads(replaced.value)
    assert replaced.topic == REJECTED and rec["code"] == "internal_error" and rec["offset"] == 1
    assert "too large to publish" in rec["reason"] and small.metrics.too_large == 1


def test_the_shell_guards_what_the_core_does_not(keys: Keys) -> None:
    class Broken(RaisingMonitor):
        def rejection_row(self, r: Any, message: str | bytes) -> dict[str, Any]:
            raise ValueError("cannot write the row")

    ring = Keyring.load(keys.keyring)
    core = StreamCore(lambda: Broken(SpecRegistry.load_dir(SPECS), signer=keys.monitor, keyring=ring))
    core.assign([3])
    core.activate(3)
    [row] = core.process(3, 9, b"not json")
    rec = json.loads(row.value)
    assert (rec["code"], rec["partition"], rec["offset"], rec["record"]) == ("internal_error", 3, 9, "not json")
    assert "ValueError: cannot write the row" in rec["reason"]
    assert core.process(3, 10, signed_batch(keys.gate, 0, 3)) == []  # accepted, nothing due yet
    assert core.metrics.records_in == 4


def test_an_internal_error_the_core_returns_is_logged_with_partition_and_offset(keys: Keys, caplog: Any) -> None:
    class FailsInside(RaisingMonitor):
        def _feed_one(self, *args: Any, **kwargs: Any) -> None:
            raise OverflowError("math range error")

    ring = Keyring.load(keys.keyring)
    core = StreamCore(lambda: FailsInside(SpecRegistry.load_dir(SPECS), signer=keys.monitor, keyring=ring))
    core.assign([1])
    core.activate(1)
    [row] = core.process(1, 4, poison(keys.gate)["registration"])
    assert json.loads(row.value)["code"] == "internal_error"
    assert core.metrics.internal_errors == 1 and core.metrics.rejected["internal_error"] == 1
    assert "partition 1 offset 4 (live)" in caplog.text and "OverflowError: math range error" in caplog.text


class _Topic:
    """A topic whose sends fail as told: 'send' (refused at once) or 'delivery' (by the broker)."""

    def __init__(self, fail: list[tuple[str, Exception]]) -> None:
        self.fail = fail
        self.sent: list[bytes] = []

    async def send(self, key: bytes | None, value: bytes) -> asyncio.Future[Any]:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail:
            where, exc = self.fail.pop(0)
            if where == "send":
                raise exc
            fut.set_exception(exc)
        else:
            self.sent.append(value)
            fut.set_result(None)
        return fut


def test_the_publisher_replaces_what_is_too_large_and_retries_the_rest(keys: Keys) -> None:
    from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
    from faust.exceptions import ProducerSendError

    from missionwatch.stream.app import _Publisher

    core = _core(keys)
    wrapped = ProducerSendError("Error while sending")  # Faust's wrapping of aiokafka's refusal
    wrapped.__cause__ = MessageSizeTooLargeError("too big for the producer")
    out = _Topic([("send", wrapped), ("delivery", MessageSizeTooLargeError("too big for the broker"))])
    rejected = _Topic([("delivery", KafkaTimeoutError())])
    health = Health(agent_running=True)
    pub = _Publisher({OUT: out, REJECTED: rejected}, core, health)

    async def go() -> None:
        sent = [await pub.send(Publish(OUT, b"m", b'{"n":5}'), 0, 5, b"message 5"),
                await pub.send(Publish(REJECTED, None, b'{"n":6}'), 0, 6, b"message 6"),
                await pub.send(Publish(OUT, b"m", b'{"n":7}'), 0, 7, b"message 7")]
        await pub.settle(sent)

    asyncio.run(go())
    assert out.sent == []  # both refused as too large: replaced by rows on the rejected topic
    got = rows(rejected.sent)
    assert got[1] == {"n": 6}  # the timeout was retried
    assert [(r["code"], r["offset"], r["record"]) for r in (got[0], got[2])] == \
        [("internal_error", 5, "message 5"), ("internal_error", 7, "message 7")]
    assert "too large to publish" in got[0]["reason"] and "too big for the broker" in got[2]["reason"]
    assert core.metrics.too_large == 2 and health.publish_failing is None


def test_healthz_tells_the_truth(keys: Keys) -> None:
    class App:
        should_stop = False
        crashed = False
        consumer = None

    core, app = _core(keys), App()
    assert healthz(app, core, Health(agent_running=True))[1] == 200
    assert healthz(app, core, Health(agent_running=True))[0]["status"] == "ok"
    core.process(0, 0, poison(keys.gate)["core raises"])
    body, code = healthz(app, core, Health(agent_running=True, catching_up={2}))
    assert (body["status"], code, body["internal_errors"], body["catching_up"]) == ("degraded", 200, 1, [2])
    assert body["last_internal_error"]["offset"] == 0 and body["problems"]
    body, code = healthz(app, core, Health(agent_running=True, agent_crash="KeyError: 1"))
    assert (body["status"], code) == ("down", 503) and "KeyError: 1" in body["problems"][0]
    assert healthz(app, core, Health(agent_running=False))[0]["status"] == "down"
    app.should_stop = True
    assert healthz(app, core, Health(agent_running=True))[:2] == (healthz(app, core)[0], 503)
    assert healthz(app, core)[0]["status"] == "stopping"


# --- against the real embedded broker ---------------------------------------------------------

def _wait(worker: RaisingWorker, metric: str, at_least: float, timeout: float = 90.0) -> dict[str, float]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.proc.poll() is None, worker.log_text()[-3000:]
        m = worker.metrics()
        if m.get(metric, 0) >= at_least:
            return m
        time.sleep(0.2)
    raise AssertionError(f"{metric} < {at_least} after {timeout} s: {worker.metrics()}")


def _healthy(worker: RaisingWorker, status: str) -> dict[str, Any]:
    code, body = worker.health()
    assert (code, body["status"]) == (200, status), body
    return body


def test_poison_messages_never_stop_the_worker_and_a_kill_9_restart_survives_them(broker, keys: Keys,
                                                                                  tmp_path: Path) -> None:
    msgs = poison(keys.gate)
    data = tmp_path / "data"
    first = RaisingWorker(broker, data, keys, group="poison", session_timeout=KILLED_SESSION_TIMEOUT)
    try:
        first.wait_assigned(want=4)
        assert _healthy(first, "ok")["internal_errors"] == 0
        where = produce(broker.bootstrap, list(msgs.values()))
        part = where[0][0]
        _wait(first, "missionwatch_messages_in_total", len(msgs))
        body = _healthy(first, "degraded")  # consuming, but the monitor failed on one message
        assert body["internal_errors"] == 1 and body["last_internal_error"]["during"] == "live"
        assert (body["last_internal_error"]["partition"], body["last_internal_error"]["offset"]) == where[-1]
        wait_committed(broker.bootstrap, "poison", len(msgs))
        assert first.health()[1]["lag"] == {str(p): 0 for p in range(4)}
        first.kill9()
    finally:
        first.stop()
    assert f"partition {part} offset {where[-1][1]} (live)" in first.log_text()
    with pytest.raises(OSError):
        first.health()  # nobody answers: the truth after a kill -9

    second = RaisingWorker(broker, data, keys, group="poison")
    try:
        second.wait_assigned(want=4)  # the catch-up fed every poison message again and survived
        body = _healthy(second, "degraded")
        assert body["last_internal_error"] == {**body["last_internal_error"], "partition": part,
                                               "offset": where[-1][1], "during": "catch-up"}
        assert second.metric("missionwatch_replayed_messages_total") == len(msgs)
        nxt = signed_batch(keys.gate, 22, 20)
        where += produce(broker.bootstrap, [nxt])
        m = _wait(second, "missionwatch_messages_in_total", 1)
        assert m["missionwatch_records_in_total"] == 20 and m["missionwatch_strategy_receipts_total"] >= 1
        assert _healthy(second, "degraded")["lag"][str(part)] == 0
        out = consume(broker.bootstrap, "missionwatch.out", until=2)
        rejected = consume(broker.bootstrap, "missionwatch.rejected", until=4)
    finally:
        assert second.stop() == 0
    assert "Crashed" not in first.log_text() + second.log_text()

    _, want = oracle(keys, [(p, o, v) for (p, o), v in zip(where, [*msgs.values(), nxt], strict=True)])
    assert sorted(v for *_, v in out) == sorted(p.value for p in want if p.topic == OUT)  # byte-identical
    assert sorted(v for *_, v in rejected) == sorted(p.value for p in want if p.topic == REJECTED)
    got = rows([v for *_, v in rejected])
    assert Counter(r["code"] for r in got) == {"number_out_of_range": 2, "message_too_large": 1, "internal_error": 1}
    assert all(r["topic"] == IN and len(r["record"]) <= 2048 + 40 for r in got)


def test_a_rejected_row_beyond_the_producers_limit_does_not_lose_the_batch_behind_it(broker, keys: Keys,
                                                                                    tmp_path: Path) -> None:
    """The reported failure itself: excerpts as large as the 10 MB message (a setting) make its
    rejected row larger than the producer takes; the row is published cut, the batch after it
    processed at once."""
    msgs = poison(keys.gate)
    worker = RaisingWorker(broker, tmp_path / "data", keys, group="large-row", excerpt_chars=20_000_000)
    try:
        worker.wait_assigned(want=4)
        produce(broker.bootstrap, [msgs["registration"], msgs["10 MB"], msgs["valid batch"]])
        m = _wait(worker, "missionwatch_records_in_total", 22)
        assert m["missionwatch_messages_in_total"] == 3 and m["missionwatch_strategy_receipts_total"] == 1
        assert _healthy(worker, "ok")["lag"] == {str(p): 0 for p in range(4)}
        [(_, _, _, value)] = consume(broker.bootstrap, "missionwatch.rejected", until=1)
        assert len(consume(broker.bootstrap, "missionwatch.out", until=1)) == 1
    finally:
        assert worker.stop() == 0
    row = json.loads(value)
    assert row["code"] == "message_too_large" and len(value) < 2048
