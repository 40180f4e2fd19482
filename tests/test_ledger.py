"""Oracle: the ledger's incremental counts equal a polars recompute from the raw
receipts, on hypothesis-generated streams (with duplicates and outcomes)."""

from __future__ import annotations

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from tests.conftest import stamp

AGES = ["18-34", "65+"]
TYPES = ["email.send", "offer.discount", "followup.schedule"]

records = st.lists(
    st.tuples(st.integers(0, 30), st.integers(0, 5), st.sampled_from(TYPES),
              st.sampled_from(["allowed", "denied", "overridden"]), st.sampled_from(AGES),
              st.integers(0, 7200 * 3), st.integers(0, 40), st.booleans()),
    min_size=1, max_size=120,
)


@settings(max_examples=60, deadline=None)
@given(records)
def test_ledger_equals_polars_recompute(registry, rows) -> None:
    m = Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True)
    raw = []
    for rid, subj, kind, decision, age, t, pct, is_outcome in rows:
        if is_outcome:
            rec = {"schema": "missionwatch/outcome@1", "outcome_id": f"o-{rid}", "mission_id": "m",
                   "subject": {"id": f"s-{subj}", "cohort": {"age_band": age}}, "outcome_type": "complaint",
                   "value": 1, "occurred_at": stamp(t)}
        else:
            rec = {"schema": "missionwatch/action@1", "receipt_id": f"r-{rid}", "mission_id": "m",
                   "agent_id": "a", "action_type": kind, "decision": decision,
                   "subject": {"id": f"s-{subj}", "cohort": {"age_band": age}},
                   "attributes": {"discount_pct": float(pct)}, "occurred_at": stamp(t)}
        step = m.feed(rec)
        raw += [(a.kind, a.record) for a in step.accepted if not a.duplicate]
    actions = pl.DataFrame([
        {"t": r["occurred_at"], "type": r["action_type"], "decision": r["decision"],
         "age": r["subject"]["cohort"]["age_band"], "pct": r["attributes"]["discount_pct"],
         "subject": r["subject"]["id"]} for k, r in raw if k == "action"],
        schema={"t": pl.Utf8, "type": pl.Utf8, "decision": pl.Utf8, "age": pl.Utf8, "pct": pl.Float64,
                "subject": pl.Utf8})
    outcomes = [r for k, r in raw if k == "outcome"]
    ms = m.missions.get("m")
    totals = ms.ledger.totals() if ms else {}
    for age in AGES:
        cell = totals.get(("age_band", age), {})
        sub = actions.filter(pl.col("age") == age)
        assert cell.get("actions", 0) == sub.height
        for kind in TYPES:
            assert cell.get(f"type:{kind}", 0) == sub.filter(pl.col("type") == kind).height
        assert cell.get("not_allowed", 0) == sub.filter(pl.col("decision") != "allowed").height
        assert cell.get("decision:overridden", 0) == sub.filter(pl.col("decision") == "overridden").height
        for kind in TYPES:
            got = cell.get(f"attr:{kind}:discount_pct:sum", 0)
            assert got == sub.filter(pl.col("type") == kind)["pct"].sum()
        assert cell.get("outcome:complaint", 0) == sum(
            1 for o in outcomes if o["subject"]["cohort"]["age_band"] == age)
    # each subject counts once as contacted, in the cohort of its first action
    first = actions.with_row_index().group_by("subject").agg(pl.col("age").sort_by("index").first())
    assert sum(c.get("contacted_subjects", 0) for (d, _), c in totals.items() if d == "*") == first.height
    # buckets add up to the whole mission
    if ms:
        times = pl.concat([actions.select("t"), pl.DataFrame({"t": [o["occurred_at"] for o in outcomes]},
                                                             schema={"t": pl.Utf8})])
        hourly = times.with_columns(pl.col("t").str.to_datetime(time_zone="UTC").dt.truncate("1h").alias("b"))
        assert len({b for (b, d, _) in ms.ledger.cells if d == "*"}) == hourly["b"].n_unique()


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.tuples(st.sampled_from(["actions", "type:a", "type:b", "attr:x:sum", "outcome:o"]),
                                   st.one_of(st.integers(0, 3), st.floats(-1e300, 1e300))),
                         max_size=6), max_size=12))
def test_measures_add_as_a_dict_does(batches) -> None:
    """A cell's `Measures` (names in a shared tuple, values in a list) hold what a dict adding
    `get(k, 0) + x` would, value for value and type for type, however the names arrive."""
    from missionwatch.ledger import Measures

    cell, want = Measures(), {}
    for pairs in batches:
        cell.add(pairs)
        for k, x in pairs:
            want[k] = want.get(k, 0) + x
    assert dict(cell) == want and sorted(want) == list(cell) == [k for k, _ in cell.pairs()]
    assert [type(cell[k]) for k in want] == [type(x) for x in want.values()]
    assert len(cell) == len(want) and ("nowhere" in cell) is False
