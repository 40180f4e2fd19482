"""benchmarks/memory.py's inputs: what its cases say they are."""

from __future__ import annotations

from benchmarks.memory import Case, records


def _subjects(case: Case) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rec in records(case):
        if "subject" in rec:
            out.setdefault(rec["mission_id"], set()).add(rec["subject"]["id"])
    return out


def test_missions_share_customers_unless_each_has_its_own() -> None:
    shared = _subjects(Case("x", 3, 30, 6, cohorts=12))
    own = _subjects(Case("x", 3, 30, 6, cohorts=12, own_customers=True))
    assert len(set.union(*shared.values())) <= 6 and set.intersection(*shared.values())
    assert not set.intersection(*own.values())
    for mission, ids in own.items():  # the same customers, named by their mission
        assert {i.split("/", 1)[1] for i in ids} == shared[mission] and all(i.startswith(mission + "/") for i in ids)


def test_own_customers_keep_their_cohorts() -> None:
    pairs = zip(records(Case("x", 2, 20, 6, cohorts=12)), records(Case("x", 2, 20, 6, cohorts=12, own_customers=True)),
                strict=True)
    for a, b in pairs:
        assert a.get("subject", {}).get("cohort") == b.get("subject", {}).get("cohort")
