"""Bounded state: the ledger keeps only its open buckets. Sealed parts (`Step.sealed`) plus
the open cells equal the ledger an unbounded monitor keeps, on a multi-day campaign whose
records come out of order and with outcomes back-dated into sealed buckets; the replay's
ledger.duckdb sums the parts into the same table."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from missionwatch.monitor import Monitor
from missionwatch.records import format_time
from missionwatch.replay import replay_file
from missionwatch.signing import Signer
from missionwatch.sim import Campaign, generate
from missionwatch.spec import SpecRegistry
from tests.conftest import SPECS, line

Cells = dict[tuple[str, float, str, str], dict[str, float]]


def specs_open(directory: Path, opened: str) -> SpecRegistry:
    """The stock specs with `open = <opened>` in their [spec] section."""
    directory.mkdir()
    for name in ("retention", "default"):
        text = (SPECS / f"{name}.toml").read_text()
        assert "\n[cohorts]" in text
        (directory / f"{name}.toml").write_text(text.replace("\n[cohorts]", f'open = "{opened}"\n\n[cohorts]', 1))
    return SpecRegistry.load_dir(directory)


def hostile_campaign() -> list[dict[str, Any]]:
    """Nine days of a campaign (an action every 2 minutes), shuffled within runs of 50
    records, with 300 outcomes back-dated 3 to 6 days (into buckets sealed long before)."""
    recs = list(generate(Campaign(mission_id="m-long", actions=6_500, subjects=800, seconds_between_actions=120)))
    rng = random.Random(11)
    head, body = recs[:1], recs[1:]
    for i in range(0, len(body), 50):
        chunk = body[i:i + 50]
        rng.shuffle(chunk)
        body[i:i + 50] = chunk
    t_end = 1777593600 + 6_500 * 120  # 2026-05-01 plus the campaign
    late = [{"schema": "missionwatch/outcome@1", "outcome_id": f"late-{k}", "mission_id": "m-long",
             "subject": {"id": f"subj-{rng.randrange(800)}", "cohort": {"age_band": "65+"}},
             "outcome_type": "complaint", "value": 1,
             "occurred_at": format_time(t_end - rng.uniform(3, 6) * 86_400)} for k in range(300)]
    for k, rec in enumerate(late):
        body.insert(len(body) // 2 + k * 10, rec)
    return head + body


def cells_of(m: Monitor) -> Cells:
    return {(mid, *key): dict(c) for mid in m.mission_ids() for key, c in m.missions[mid].ledger.cells.items()}


def test_sealed_parts_and_open_cells_make_the_whole_ledger(tmp_path: Path) -> None:
    records = hostile_campaign()
    bounded = Monitor(specs_open(tmp_path / "b", "2d"), signer=Signer.generate("m"), allow_unsigned=True)
    whole = Monitor(specs_open(tmp_path / "w", "10000d"), signer=Signer.generate("m"), allow_unsigned=True)
    parts: Cells = {}
    sealed_keys: list[tuple[str, float, str, str]] = []
    biggest_open = 0
    for rec in records:
        whole.feed(rec)
        step = bounded.feed(rec)
        assert not step.rejected, step.rejected
        for mid, key, cell in step.sealed:
            sealed_keys.append((mid, *key))
            acc = parts.setdefault((mid, *key), {})
            for k, x in cell.items():
                acc[k] = acc.get(k, 0) + x
        biggest_open = max(biggest_open, len(bounded.missions["m-long"].ledger.cells))
    for key, cell in cells_of(bounded).items():
        acc = parts.setdefault(key, {})
        for k, x in cell.items():
            acc[k] = acc.get(k, 0) + x
    want = cells_of(whole)
    assert parts.keys() == want.keys()
    for key, cell in want.items():
        assert parts[key] == pytest.approx(cell, rel=1e-12), key
    # it was bounded: most buckets were sealed, some twice (late records reopened them)
    buckets = {k[1] for k in want}
    ledger = bounded.missions["m-long"].ledger
    assert len(buckets) > 200 and len({k[1] for k in ledger.cells}) <= 2 * 24 + 1 + 24
    assert len(sealed_keys) > len(set(sealed_keys)) > 0.8 * len(want)
    assert biggest_open < len(want) / 3
    got, full = bounded.ledger_totals("m-long"), whole.ledger_totals("m-long")
    assert [{**r, "value": 0} for r in got] == [{**r, "value": 0} for r in full]
    assert [r["value"] for r in got] == pytest.approx([r["value"] for r in full], rel=1e-12)
    # the receipts do not depend on how long buckets stay open
    body_b, body_w = (m.view("m-long").receipt_body("x") for m in (bounded, whole))
    assert body_b.pop("spec_version") != body_w.pop("spec_version")  # the spec files differ in `open`
    assert body_b == body_w


def test_the_replayed_ledger_sums_the_parts(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(line(r) + "\n" for r in hostile_campaign()))
    tables = []
    for name, opened in (("b", "2d"), ("w", "10000d")):
        m = Monitor(specs_open(tmp_path / f"specs-{name}", opened), signer=Signer.generate("m"), allow_unsigned=True)
        replay_file(src, tmp_path / f"out-{name}", m, batch_rows=5_000)
        con = duckdb.connect(str(tmp_path / f"out-{name}" / "ledger.duckdb"), read_only=True)
        tables.append((con.execute("SELECT * EXCLUDE (value), value FROM ledger").fetchall(),
                       con.execute("SELECT * FROM ledger_totals").fetchall()))
        con.close()
    (rows_b, totals_b), (rows_w, totals_w) = tables
    assert [r[:-1] for r in rows_b] == [r[:-1] for r in rows_w]  # same cells, same order
    assert [r[-1] for r in rows_b] == pytest.approx([r[-1] for r in rows_w], rel=1e-12)
    assert [r[:-1] for r in totals_b] == [r[:-1] for r in totals_w]
    assert [r[-1] for r in totals_b] == pytest.approx([r[-1] for r in totals_w], rel=1e-12)


def test_write_ledger_takes_the_sealed_cells(tmp_path: Path) -> None:
    """A library caller writing the ledger from a kept replay passes `result.sealed`: the
    tables equal those `replay_file` writes as it goes."""
    from missionwatch.replay import replay_lines
    from missionwatch.store import write_ledger

    src = tmp_path / "in.jsonl"
    src.write_text("".join(line(r) + "\n" for r in hostile_campaign()))
    registry = specs_open(tmp_path / "specs", "2d")
    m = Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True)
    replay_file(src, tmp_path / "out", m)
    kept = Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True)
    result = replay_lines(kept, src.read_text().splitlines())
    assert len(result.sealed) > 1000
    write_ledger(tmp_path / "written.duckdb", kept, result.accepted, result.events, result.rejected, result.sealed)
    tables = []
    for path in (tmp_path / "out" / "ledger.duckdb", tmp_path / "written.duckdb"):
        con = duckdb.connect(str(path), read_only=True)
        tables.append([con.execute(f"SELECT * FROM {t}").fetchall() for t in ("ledger", "ledger_totals")])
        con.close()
    assert tables[0] == tables[1]
