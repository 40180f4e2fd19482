"""Fuzz: whatever message comes first, the worker processes the next (valid) one.

Hostile messages: huge and non-finite numbers, deep nesting, duplicate keys, unicode cohort
values (signed, so some are accepted), mixed batches, truncated records and binary junk.
Many examples go through `StreamCore.process` directly; one list of 25 goes through the real
broker and worker, whose publishes must equal those of a `StreamCore` fed the same messages."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from missionwatch.stream.core import OUT, REJECTED
from tests.conftest import action
from tests.hostile.stream_kit import (  # noqa: F401  (broker, keys: fixtures)
    MISSION,
    Keys,
    RaisingWorker,
    broker_fixture,
    dumps,
    keys_fixture,
    oracle,
    produce,
    signed_batch,
)
from tests.stream.conftest import consume

_ids = st.integers(1000, 10**6)


def _action(i: int, **fields: Any) -> dict[str, Any]:
    return {**action(i, mission=MISSION, t=i), "receipt_id": f"j-{i}", **fields}


def hostile(keys: Keys) -> st.SearchStrategy[bytes]:
    gate = keys.gate
    number_text = st.one_of(
        st.integers(20, 6000).map(lambda n: "9" * n), st.sampled_from(["1e400", "-1e308", "NaN", "-Infinity"]),
        st.floats(allow_nan=False).map(repr), st.integers(2**53, 2**80).map(str))
    return st.one_of(
        st.tuples(_ids, number_text).map(lambda t: dumps(_action(t[0])).replace(
            b'"attributes":{}', b'"attributes":{"n":' + t[1].encode() + b"}")),
        st.tuples(st.integers(1, 3000), st.sampled_from(["[", '{"a":'])).map(
            lambda t: (t[1] * t[0] + "0" + ("]" if t[1] == "[" else "}") * t[0]).encode()),
        st.tuples(_ids, st.sampled_from(["mission_id", "receipt_id", "decision"])).map(
            lambda t: dumps(gate.sign(_action(t[0]))).replace(b'{"schema"', f'{{"{t[1]}":"x","schema"'.encode(), 1)),
        st.tuples(_ids, st.text(max_size=40), st.text(min_size=1, max_size=8)).map(
            lambda t: dumps(gate.sign(_action(t[0], subject={"id": f"c-{t[0]}", "cohort": {"age_band": t[1],
                                                                                           t[2]: t[1]}})))),
        _ids.map(lambda i: dumps(gate.sign({"schema": "missionwatch/batch@1", "batch_id": f"mixed-{i}", "items": [
            _action(i), {**_action(i + 1), "mission_id": "m-other"}]}))),
        st.tuples(_ids, st.floats(0, 1)).map(lambda t: (b := dumps(gate.sign(_action(t[0]))))[:int(len(b) * t[1])]),
        st.binary(max_size=200),
    )


def _valid_next(core: Any, offset: int, keys: Keys) -> None:
    """The next valid message (fresh ids) is accepted whole: 20 actions more in the mission,
    nothing rejected."""
    mission = core.partitions[0].missions.get(MISSION)
    before = mission.n_actions if mission else 0
    pubs = core.process(0, offset, signed_batch(keys.gate, 2, 20, tag="valid"))
    assert [p.topic for p in pubs] == [OUT] * len(pubs)
    assert core.partitions[0].missions[MISSION].n_actions == before + 20


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_message_then_the_next_valid_one_is_processed(keys: Keys, data: Any) -> None:
    messages = data.draw(st.lists(hostile(keys), min_size=1, max_size=4))
    core, pubs = oracle(keys, [(0, o, m) for o, m in enumerate(messages)])
    assert core.next_offset[0] == len(messages) and core.metrics.messages_in == len(messages)
    for p in pubs:
        assert len(p.value) + len(p.key or b"") + 512 <= core.max_publish_bytes
        rec = json.loads(p.value)
        if p.topic == REJECTED:
            assert rec["code"] and rec["reason"] and len(rec["record"]) <= 2048 + 40
    _valid_next(core, len(messages), keys)


@settings(max_examples=1, deadline=None, phases=[Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(data=st.data())
def test_25_hostile_messages_through_the_broker_then_a_valid_batch(broker, keys: Keys, tmp_path: Path,
                                                                  data: Any) -> None:
    messages = data.draw(st.lists(hostile(keys), min_size=25, max_size=25))
    _valid_next(oracle(keys, [(0, o, m) for o, m in enumerate(messages)])[0], len(messages), keys)
    messages.append(signed_batch(keys.gate, 2, 20, tag="valid"))
    worker = RaisingWorker(broker, tmp_path / "data", keys, group="fuzz")
    try:
        worker.wait_assigned(want=4)
        where = produce(broker.bootstrap, messages)
        core, want = oracle(keys, [(p, o, m) for (p, o), m in zip(where, messages, strict=True)])
        deadline = time.monotonic() + 90
        while worker.metric("missionwatch_messages_in_total") < len(messages) and time.monotonic() < deadline:
            assert worker.proc.poll() is None, worker.log_text()[-3000:]
            time.sleep(0.2)
        m = worker.metrics()
        code, body = worker.health()
        n_out = sum(p.topic == OUT for p in want)
        out = consume(broker.bootstrap, "missionwatch.out", until=n_out)
        rejected = consume(broker.bootstrap, "missionwatch.rejected", until=len(want) - n_out)
    finally:
        assert worker.stop() == 0
    assert m["missionwatch_records_in_total"] == core.metrics.records_in
    assert code == 200 and body["lag"] == {str(p): 0 for p in range(4)}
    assert sorted(v for *_, v in out) == sorted(p.value for p in want if p.topic == OUT)
    assert sorted(v for *_, v in rejected) == sorted(p.value for p in want if p.topic == REJECTED)
