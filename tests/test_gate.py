"""The gate client's control logic, record by record (the live loop is in tests/stream)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from missionwatch.gate import Gate, GateError
from missionwatch.signing import Keyring, Signer


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
