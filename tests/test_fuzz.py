"""Fuzz: arbitrary JSON, truncated lines and mutated valid records never raise; every
bad record gets a code and a reason; the ledger equals that of the good records alone."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from tests.conftest import action, line

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=10)


def _mutations(rec: dict[str, Any]) -> st.SearchStrategy[str]:
    text = line(rec)
    keys = sorted(rec)
    return st.one_of(
        st.integers(0, len(text) - 1).map(lambda i: text[:i]),  # truncated
        st.tuples(st.sampled_from(keys), json_values).map(lambda kv: line({**rec, kv[0]: kv[1]})),
        st.sampled_from(keys).map(lambda k: line({x: v for x, v in rec.items() if x != k})),
        json_values.map(lambda v: json.dumps(v, allow_nan=True)),
        st.binary(max_size=40),
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_core_never_raises_and_ledger_is_that_of_good_records(registry, keys, keyring, data) -> None:
    gate: Signer = keys["gate"]
    good = [gate.sign(action(i, action_type="offer.discount", discount_pct=5.0)) for i in range(6)]
    noisy = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    clean = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    for rec in good:
        junk = data.draw(st.lists(_mutations(rec), max_size=3))
        for j in junk:
            step = noisy.feed(j)
            for r in step.rejected:
                assert r.code and r.reason
            for a in step.accepted:  # a mutation may still be a valid, correctly signed record
                assert a.duplicate or a.hash
        noisy.feed(line(rec))
        clean.feed(line(rec))
    accepted_junk = noisy.missions["m-1"].n_actions - clean.missions["m-1"].n_actions
    assert accepted_junk == 0
    assert noisy.missions["m-1"].ledger.totals() == clean.missions["m-1"].ledger.totals()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(json_values | st.text(max_size=30), max_size=8))
def test_arbitrary_input_is_rejected_with_a_reason(registry, keys, keyring, items) -> None:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    for item in items:
        text = item if isinstance(item, str) else json.dumps(item, allow_nan=True)
        step = m.feed(text)
        assert step.rejected and all(r.code and r.reason for r in step.rejected)
        assert not step.accepted
