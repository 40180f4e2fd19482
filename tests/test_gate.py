"""The gate client's control logic and its publishing, record by record, with a fake broker
and a fake clock (the live loop and a real broker outage are in tests/stream)."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from aiokafka import errors as ke

from missionwatch.gate import Gate, GateError, backoff_delay, error_kind
from missionwatch.signing import Keyring, Signer
from tests.conftest import action


def chain(signer: Signer, mission: str, states: list[str | None], minute: int = 0) -> list[bytes]:
    """Out records of one mission: a strategy receipt for None, else a control signal."""
    out: list[bytes] = []
    prev = None
    for seq, state in enumerate(states):
        body: dict[str, Any] = {"mission_id": mission, "seq": seq, "prev_hash": prev,
                                "issued_at": f"2026-05-01T00:{minute:02d}:{seq:02d}Z"}
        if state is None:
            body["schema"] = "missionwatch/strategy@1"
        else:
            body.update(schema="missionwatch/control@1", state=state, cause=f"cause-{seq}")
        rec = signer.seal(body)
        prev = rec["hash"]
        out.append(json.dumps(rec).encode())
    return out


@pytest.fixture
def gate(keyring: Keyring) -> Gate:
    return Gate("127.0.0.1:1", keyring)


@pytest.fixture
def records(keys: dict[str, Signer]) -> list[bytes]:
    return chain(keys["monitor"], "m-1", [None, "paused", None, "running"])


def test_a_pause_applies_at_once_even_ahead_of_the_chain(gate: Gate, records: list[bytes]) -> None:
    assert not gate.is_paused("m-1")
    gate.receive(records[1])  # seq 0 not seen yet
    assert gate.is_paused("m-1")
    state = gate.state("m-1")
    assert state is not None and (state.state, state.cause, state.seq) == ("paused", "cause-1", 1)
    assert "m-1" not in gate.chains.heads
    gate.receive(records[0])
    assert gate.chains.heads["m-1"][0] == 1 and gate.problems == []


def test_a_resume_waits_until_the_chain_reaches_it(gate: Gate, records: list[bytes]) -> None:
    gate.receive(records[1])
    gate.receive(records[3])  # the resume, ahead of seq 0 and 2
    assert gate.is_paused("m-1")
    gate.receive(records[0])
    assert gate.is_paused("m-1")  # seq 2 still missing
    gate.receive(records[2])
    assert not gate.is_paused("m-1")
    state = gate.state("m-1")
    assert state is not None and state.state == "running" and state.seq == 3
    for r in records:  # redeliveries change nothing
        gate.receive(r)
    assert not gate.is_paused("m-1") and gate.problems == []


def test_forged_or_edited_signals_are_never_obeyed(gate: Gate, keys: dict[str, Signer],
                                                   records: list[bytes]) -> None:
    forged = chain(keys["stranger"], "m-1", [None, "paused"])[1]
    edited = json.loads(records[1])
    edited["mission_id"] = "m-2"
    gate.receive(forged)
    gate.receive(json.dumps(edited).encode())
    gate.receive(b"{not json")
    assert not gate.is_paused("m-1") and not gate.is_paused("m-2")
    assert len(gate.problems) == 3
    assert "gate-x" in gate.problems[0] and "not in the keyring" in gate.problems[0]
    assert "hash does not match" in gate.problems[1]
    assert "not JSON" in gate.problems[2]


def test_a_forked_or_broken_chain_holds_the_mission(gate: Gate, keys: dict[str, Signer],
                                                    records: list[bytes]) -> None:
    other = chain(keys["monitor"], "m-1", [None, None, None, "running"], minute=1)
    gate.receive(records[0])
    gate.receive(records[2])
    gate.receive(other[2])  # seq 2 again, different content
    assert gate.is_paused("m-1")
    assert "forked" in (gate.broken("m-1") or "")

    gate2 = Gate("127.0.0.1:1", gate.keys)
    gate2.receive(records[0])
    gate2.receive(other[1])  # seq 1 of another chain: prev_hash names a record never seen
    assert gate2.is_paused("m-1") and "chain is broken" in (gate2.broken("m-1") or "")


def test_bad_use_is_refused_with_a_reason(keys: dict[str, Signer], keyring: Keyring) -> None:
    no_monitor = Keyring()
    no_monitor.add("gate-1", keys["gate"].public_key, "gate")
    with pytest.raises(GateError, match="no monitor key"):
        Gate("127.0.0.1:1", no_monitor)
    gate = Gate("127.0.0.1:1", keyring)
    with pytest.raises(GateError, match="mission_id"):
        asyncio.run(gate.send({"schema": "missionwatch/action@1"}))
    with pytest.raises(GateError, match="not started"):
        asyncio.run(gate.send({"mission_id": "m-1"}))


# --- publishing: a fake broker behind the gate's publish seam, a fake clock ----------------------

class FakeBroker:
    """The gate's `publish`: answers each try from a script (an exception is raised, an Event
    holds the batch in flight until set, None acknowledges; acknowledges once the script runs
    out) and refuses values longer than `max_value` as too large."""

    def __init__(self, *script: BaseException | asyncio.Event | None, max_value: int = 10**9) -> None:
        self.script = list(script)
        self.max_value = max_value
        self.tries: list[dict[str, Any]] = []
        self.acked: list[dict[str, Any]] = []

    async def __call__(self, topic: str, key: bytes, value: bytes) -> None:
        envelope = json.loads(value)
        assert topic == "missionwatch.in" and key == envelope["items"][0]["mission_id"].encode()
        self.tries.append(envelope)
        outcome = self.script.pop(0) if self.script else None
        if len(value) > self.max_value:
            raise ke.MessageSizeTooLargeError()
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, asyncio.Event):
            await outcome.wait()
        self.acked.append(envelope)

    def ids(self) -> list[str]:
        return [item["receipt_id"] for e in self.acked for item in e["items"]]


class FakeClock:
    """time.monotonic and asyncio.sleep for the gate: a sleep moves the clock at once."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def publishing_gate(keyring: Keyring, broker: FakeBroker, clock: FakeClock, **settings: Any) -> Gate:
    return Gate("127.0.0.1:1", keyring, publish=broker, clock=clock, sleep=clock.sleep, rng=random.Random(7),
                **{"linger": 3600, "retry_backoff": 0.1, "retry_backoff_max": 0.5, **settings})


def ids(*numbers: int, mission: str = "m-1") -> list[str]:
    return [f"r-{mission}-{i}" for i in numbers]


TRANSIENT = [ke.UnknownError(), ke.RequestTimedOutError(), ke.NotLeaderForPartitionError(),
             ke.KafkaConnectionError("refused"), ConnectionRefusedError(111, "Connection refused"),
             ke.KafkaTimeoutError(), ke.NodeNotReadyError(), ke.LeaderNotAvailableError()]


def test_transient_errors_are_retried_with_capped_jittered_backoff(keys: dict[str, Signer],
                                                                   keyring: Keyring) -> None:
    broker, clock = FakeBroker(*TRANSIENT), FakeClock()
    gate = publishing_gate(keyring, broker, clock, signer=keys["gate"])

    async def go() -> None:
        for i in range(3):
            await gate.send(action(i))
        await gate.send(action(0, mission="m-2"))
        await gate.flush()

    asyncio.run(go())
    assert broker.ids() == ids(0, 1, 2) + ids(0, mission="m-2")  # each once, in order
    assert [e["items"] for e in broker.tries[:-1]] == [broker.acked[0]["items"]] * (len(TRANSIENT) + 1)
    assert all(e["signature"]["key_id"] == "gate-1" for e in broker.tries)
    rng = random.Random(7)
    assert clock.slept == [backoff_delay(n, 0.1, 0.5, rng) for n in range(len(TRANSIENT))]
    for n, wait in enumerate(clock.slept):
        assert min(0.5, 0.1 * 2**n) / 2 <= wait < min(0.5, 0.1 * 2**n)
    assert (gate.sent, gate.queued, gate.retries, gate.halted) == (4, 0, len(TRANSIENT), None)


def test_at_the_deadline_flush_says_how_many_remain_and_keeps_them(keyring: Keyring) -> None:
    broker, clock = FakeBroker(*[ke.LeaderNotAvailableError() for _ in range(100)]), FakeClock()
    gate = publishing_gate(keyring, broker, clock, retry_deadline=10)

    async def go() -> None:
        for i in range(3):
            await gate.send(action(i))
        with pytest.raises(GateError, match=r"nothing for 10 s .*LeaderNotAvailable.*3 records remain queued") as info:
            await gate.flush()
        assert info.value.queued == 3 and not info.value.fatal
        assert (gate.sent, gate.queued, broker.acked) == (0, 3, [])
        assert clock.now < 10 and max(clock.slept) == pytest.approx(0.5, abs=0.25)  # capped
        broker.script.clear()  # the broker is back
        await gate.send(action(3))
        await gate.flush()

    asyncio.run(go())
    assert broker.ids() == ids(0, 1, 2, 3) and gate.queued == 0


def test_a_batch_in_flight_is_waited_for_never_sent_twice(keyring: Keyring) -> None:
    held = asyncio.Event()
    broker, clock = FakeBroker(held), FakeClock()
    gate = publishing_gate(keyring, broker, clock, retry_deadline=5)

    async def go() -> None:
        for i in range(3):
            await gate.send(action(i))
        with pytest.raises(GateError, match=r"still in flight.*3 records remain queued"):
            await gate.flush()
        assert gate.in_flight == 3 and gate.queued == 3
        await gate.send(action(3))
        held.set()
        await gate.flush()

    asyncio.run(go())
    assert [[i["receipt_id"] for i in e["items"]] for e in broker.tries] == [ids(0, 1, 2), ids(3)]
    assert broker.ids() == ids(0, 1, 2, 3) and (gate.sent, gate.in_flight, gate.queued) == (4, 0, 0)


def test_a_cancelled_flush_leaves_its_batch_in_flight(keyring: Keyring) -> None:
    held = asyncio.Event()
    broker = FakeBroker(held)
    gate = Gate("127.0.0.1:1", keyring, publish=broker, linger=3600)  # the real clock: a real cancel

    async def go() -> None:
        await gate.send(action(0))
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(gate.flush(), 0.05)
        assert gate.in_flight == 1
        held.set()
        await gate.flush()

    asyncio.run(go())
    assert len(broker.tries) == 1 and broker.ids() == ids(0)


def test_a_full_queue_makes_send_wait_until_its_batch_is_published(keyring: Keyring) -> None:
    broker, clock = FakeBroker(ke.NotLeaderForPartitionError(), ke.UnknownError()), FakeClock()
    gate = publishing_gate(keyring, broker, clock, max_batch=2)

    async def go() -> None:
        await gate.send(action(0))
        assert broker.tries == [] and gate.queued == 1
        await gate.send(action(1))  # the second fills the batch: send returns once it is published
        assert gate.sent == 2 and len(clock.slept) == 2

    asyncio.run(go())
    assert broker.ids() == ids(0, 1)


def test_too_large_batches_are_split_and_a_record_too_large_alone_is_set_aside(keyring: Keyring) -> None:
    broker, clock = FakeBroker(max_value=1000), FakeClock()
    gate = publishing_gate(keyring, broker, clock)
    big = action(3, note="x" * 2000)

    async def go() -> None:
        for rec in [action(0), action(1), action(2), big, action(4), action(5)]:
            await gate.send(rec)
        with pytest.raises(GateError, match=r"1 record.* alone exceed") as info:
            await gate.flush()
        assert info.value.queued == 0 and not info.value.fatal

    asyncio.run(go())
    assert broker.ids() == ids(0, 1, 2, 4, 5)
    assert [(rec, "too large" in why) for rec, why in gate.refused] == [(big, True)]
    assert (gate.queued, gate.retries, clock.slept) == (0, 0, [])


def test_an_error_retrying_cannot_fix_is_not_retried(keyring: Keyring) -> None:
    broker, clock = FakeBroker(ke.TopicAuthorizationFailedError()), FakeClock()
    gate = publishing_gate(keyring, broker, clock, linger=0.02)

    async def go() -> None:
        for i in range(3):
            await gate.send(action(i))
        with pytest.raises(GateError, match=r"TopicAuthorizationFailed.*cannot fix; 3 records remain") as info:
            await gate.flush()
        assert info.value.fatal and info.value.queued == 3
        assert gate.halted is not None and (len(broker.tries), clock.slept) == (1, [])
        lingerer = asyncio.create_task(gate._lingerer())  # the background publisher holds...
        for _ in range(20):
            await asyncio.sleep(0)
        assert len(broker.tries) == 1 and len(clock.slept) > 5
        await gate.flush()  # ...until the gateway flushes again (say, once the ACL is fixed)
        lingerer.cancel()

    asyncio.run(go())
    assert broker.ids() == ids(0, 1, 2) and gate.halted is None


@pytest.mark.parametrize(("error", "kind"), [
    *[(e, "transient") for e in TRANSIENT], (TimeoutError(), "transient"),
    (ke.MessageSizeTooLargeError(), "too_large"), (ke.RecordListTooLargeError(), "too_large"),
    (ke.TopicAuthorizationFailedError(), "fatal"), (ke.InvalidTopicError(), "fatal"),
    (ke.UnsupportedVersionError(), "fatal"), (ke.ProducerClosed(), "fatal"), (TypeError("a bug"), "fatal"),
])
def test_error_kinds(error: BaseException, kind: str) -> None:
    assert error_kind(error) == kind


def test_backoff_doubles_up_to_its_cap_with_seeded_jitter() -> None:
    a, b = random.Random(3), random.Random(3)
    waits = [backoff_delay(n, 0.1, 5.0, a) for n in range(12)]
    assert waits == [backoff_delay(n, 0.1, 5.0, b) for n in range(12)]
    for n, wait in enumerate(waits):
        assert min(5.0, 0.1 * 2**n) / 2 <= wait < min(5.0, 0.1 * 2**n)
    assert 2.5 <= backoff_delay(10_000, 0.1, 5.0, a) < 5.0  # no overflow after a long outage
