"""Fuzz with hostile shapes: huge numbers, deep nesting, duplicate keys, Unicode cohort values
and mixed batches. The core never raises (no `internal_error` either), every rejection has a
code and a reason, junk never changes the ledger, and replay writes one bounded row per
rejection."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from missionwatch.monitor import Monitor
from missionwatch.replay import replay_file
from missionwatch.spec import normalize_value
from tests.conftest import action, line

BIG_NUMBERS = st.one_of(
    st.integers(min_value=10**15, max_value=10**60).map(str),
    st.integers(min_value=20, max_value=6000).map(lambda n: "9" * n),
    st.sampled_from(["1e308", "-1e308", "1e400", "-1e-400", "NaN", "Infinity", "-Infinity", "1E+16"]),
)
UNICODE_COHORTS = st.text(
    alphabet=st.sampled_from(list("65+ \u200b\u00a0\u202e\u2060\ufeff６５＋aA\t")), min_size=1, max_size=8)


def _nest(depth: int, leaf: str) -> str:
    return '{"a":' * depth + leaf + "}" * depth


@st.composite
def hostile_text(draw: st.DrawFn, base: str) -> str:
    """A valid action line bent one hostile way (the result is never a valid signed record)."""
    kind = draw(st.sampled_from(["number", "deep", "dup", "mixed", "long", "binary", "batch"]))
    if kind == "number":
        return base.replace('"attributes":{}', '"attributes":{"x":' + draw(BIG_NUMBERS) + "}")
    if kind == "deep":
        return base.replace('"attributes":{}', '"attributes":' + _nest(draw(st.integers(30, 3000)), "1"))
    if kind == "dup":
        key = draw(st.sampled_from(["schema", "mission_id", "receipt_id", "decision"]))
        return base[:-1] + f',"{key}":"x"}}'
    if kind == "mixed":
        items = [json.loads(base), {**json.loads(base), "mission_id": draw(st.text(min_size=1, max_size=5))}]
        return line({"schema": "missionwatch/batch@1", "batch_id": "b", "items": items})
    if kind == "long":
        return base.replace('"attributes":{}', '"attributes":{"s":"' + "x" * draw(st.integers(8193, 20000)) + '"}')
    if kind == "binary":
        return draw(st.binary(min_size=1, max_size=64)).decode("latin-1")
    n = draw(st.integers(10_001, 12_000))
    return line({"schema": "missionwatch/batch@1", "batch_id": "b", "items": [{}] * n})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_hostile_messages_never_raise_or_change_the_ledger(registry, keys, keyring, data) -> None:
    gate = keys["gate"]
    good = [gate.sign(action(i, action_type="offer.discount", discount_pct=5.0)) for i in range(5)]
    noisy = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    clean = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    for i, rec in enumerate(good):
        bare = line(gate.sign(action(100 + i)))  # attributes {}: the place each bend goes
        assert '"attributes":{}' in bare
        for text in data.draw(st.lists(hostile_text(bare), max_size=3)):
            step = noisy.feed(text)
            assert step.rejected and not step.accepted
            for r in step.rejected:
                assert r.code != "internal_error" and r.reason
        noisy.feed(line(rec))
        clean.feed(line(rec))
    assert noisy.missions["m-1"].ledger.totals() == clean.missions["m-1"].ledger.totals()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(UNICODE_COHORTS, min_size=1, max_size=12))
def test_unicode_cohort_values_are_counted_under_their_normal_form(registry, keys, keyring, values) -> None:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    gate = keys["gate"]
    expected: dict[str, int] = {}
    for i, v in enumerate(values):
        step = m.feed(line(gate.sign(action(i, cohort={"segment": "smb", "age_band": v}))))
        assert not step.rejected and len(step.accepted) == 1
        key = normalize_value(v)
        if key:
            expected[key] = expected.get(key, 0) + 1
    seen = m.missions["m-1"].cohort_values["age_band"]
    assert sum(seen.values()) == sum(expected.values())
    assert set(seen) <= set(expected) | {"(other)"}
    cells = m.missions["m-1"].ledger.totals()
    assert sum(c.get("actions", 0) for (d, _), c in cells.items() if d == "age_band") == len(values)


def _hostile_lines(seed: int, base: str) -> list[str]:
    kinds = [
        base.replace('"attributes":{}', '"attributes":{"x":' + "7" * 5000 + "}"),
        base.replace('"attributes":{}', '"attributes":' + _nest(500, "1")),
        base[:-1] + ',"decision":"denied"}',
        base.replace('"attributes":{}', '"attributes":{"x":-1e308}'),
        line({"schema": "missionwatch/batch@1", "batch_id": "b", "items": [{}] * (200 + seed)}),
    ]
    return kinds


def test_replay_keeps_one_bounded_row_per_rejection(tmp_path: Path, registry, keys, keyring) -> None:
    gate = keys["gate"]
    lines: list[str] = []
    for i in range(20):
        rec = gate.sign(action(i))
        lines += _hostile_lines(i, line(rec))
        lines.append(line(rec))
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(lines) + "\n")
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    replay_file(src, tmp_path / "out", m, workers=0)
    rows = [json.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    codes: dict[str, int] = {}
    for r in rows:
        codes[r["code"]] = codes.get(r["code"], 0) + 1
        assert len(r["record"]) <= 2048 + 40
    batch_items = sum(200 + i for i in range(20))
    assert codes == {"number_out_of_range": 40, "too_deep": 20, "duplicate_key": 20,
                     "missing_schema": batch_items}
    assert m.missions["m-1"].n_actions == 20
