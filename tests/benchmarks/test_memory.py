"""benchmarks/memory.py's inputs: what its cases say they are."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.memory import Case, records, replay, write_input


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


def test_a_worker_case_feeds_a_streaming_workers_state(tmp_path: Path) -> None:
    """The worker case runs `missionwatch run`'s StreamCore in a child: every line accepted, its
    missions' histories kept, a peak RSS measured; a line it rejects stops the benchmark."""
    case = Case("x", 3, 30, 6, cohorts=12, worker=True)
    path = tmp_path / "in.jsonl"
    lines = write_input(case, path, None)
    assert lines == sum(1 for _ in records(case)) == len(path.read_bytes().splitlines())
    run = replay(case, path, lines, tmp_path / "out", None)
    assert run.peak_rss_kib > 20_000 and (tmp_path / "out" / "rejected.jsonl").read_bytes() == b""
    with path.open("a") as f:
        f.write('{"schema": "nonsense"}\n')
    with pytest.raises(SystemExit, match="rejected records"):
        replay(case, path, lines + 1, tmp_path / "out2", None)
