"""The streaming service against the real embedded broker: stream == replay, kill -9
loses and double-counts nothing, bad messages land on missionwatch.rejected."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from missionwatch.signing import Signer, load_private_key, write_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.stream.core import ledger_summary
from tests.stream.conftest import (
    KILLED_SESSION_TIMEOUT,
    Worker,
    consume,
    expected_events,
    produce,
    published,
    rec_key,
    replay_monitor,
    wait_committed,
)


def _campaigns(tmp: Path) -> tuple[list[bytes], Path]:
    """Two signed missions interleaved (one with a planted discount gap), and bad messages."""
    lines: list[list[bytes]] = []
    gate: Signer | None = None
    for seed, mission, gap in ((7, "m-gap", "age_band=65+"), (12, "m-fair", None)):
        paths = write_campaign(Campaign(mission_id=mission, seed=seed, actions=3000, subjects=800,
                                        discount_gap=gap, discount_gap_factor=0.4), tmp / mission)
        recs = [json.loads(ln) for ln in paths["receipts"].open("rb") if ln.strip()]
        gate = gate or load_private_key(paths["gate-1"])
        # one gateway key signs both missions (the first campaign's keyring)
        lines.append([json.dumps(gate.sign({k: v for k, v in r.items() if k != "signature"})).encode()
                      for r in recs])
    mixed = [ln for pair in zip(*lines, strict=False) for ln in pair]
    assert gate is not None
    reviewer = load_private_key(tmp / "m-gap" / "reviewer-1.pem")
    forged = json.loads(lines[0][5])
    forged["decision"] = "denied"  # the signature no longer covers it
    wrong_role = reviewer.sign({k: v for k, v in json.loads(lines[0][6]).items() if k != "signature"})
    bad = [b'{"schema": "missionwatch/action@1", "mission_id": "m-gap"', json.dumps(forged).encode(),
           json.dumps(wrong_role).encode()]
    assert gate.key_id == "gate-1"
    mixed[100:100] = bad
    return mixed, tmp / "m-gap" / "keyring.json"


def last_seq(events: list[dict[str, Any]]) -> int:
    """The seq a mission's chain ends at (its checkpoints have none)."""
    return max(e["seq"] for e in events if "seq" in e)


def _read_while_writing(data: Path, want: int, timeout: float = 120) -> list[int]:
    """Count the live ledger's actions again and again until it holds `want`: the counts seen."""
    from missionwatch.store.query import open_ledger

    counts: list[int] = []
    deadline = time.monotonic() + timeout
    while (not counts or counts[-1] < want) and time.monotonic() < deadline:
        if (data / "ledger" / "commits").is_dir():
            con = open_ledger(data=data)
            row = con.execute("SELECT count(*) FROM actions").fetchone()
            con.close()
            assert row is not None and row[0] <= want, row  # never more than was produced
            if not counts or row[0] != counts[-1]:
                counts.append(row[0])
        time.sleep(0.1)
    return counts


def test_stream_equals_replay_across_a_kill_9(broker, tmp_path: Path) -> None:
    lines, keyring = _campaigns(tmp_path)
    signer = Signer.generate("monitor")
    write_private_key(signer, tmp_path / "monitor.pem")
    replayed = replay_monitor(lines, keyring, signer, feed=False)
    expected, expected_rejected = expected_events(lines, keyring, signer, monitor=replayed)
    total = sum(len(v) for v in expected.values())
    assert "m-gap" in expected and any(e["schema"] == "missionwatch/escalation@1" for e in expected["m-gap"])

    data = tmp_path / "data"
    # no checkpoints: this is the rebuild from the log (test_checkpoint.py has the restore)
    first = Worker(broker, data, keyring, tmp_path / "monitor.pem", group="kill9",
                   session_timeout=KILLED_SESSION_TIMEOUT, extra=("--checkpoint-every", "0"))
    try:
        first.wait_assigned(want=4)
        quarter, half = len(lines) // 4, len(lines) // 2
        produce(broker.bootstrap, lines[:quarter])
        wait_committed(broker.bootstrap, "kill9", quarter)  # a commit has happened
        counted = first.metrics()  # the bad messages sit in the first quarter
        produce(broker.bootstrap, lines[quarter:half])
        deadline = time.monotonic() + 60
        while first.metric("missionwatch_messages_in_total") < quarter + 50 and time.monotonic() < deadline:
            time.sleep(0.01)
        first.kill9()  # mid-stream: some processed, some committed, some neither
        processed_before = True
    finally:
        first.stop()
    assert processed_before
    produce(broker.bootstrap, lines[half:])  # arrives while no worker runs

    second = Worker(broker, data, keyring, tmp_path / "monitor.pem", group="kill9",
                    extra=("--ledger-every", "0.5", "--checkpoint-every", "0"))
    want_actions = sum(v.totals["actions"] for m in expected if (v := replayed.view(m)) is not None)
    try:
        second.wait_assigned(want=4)
        counts = _read_while_writing(data, want_actions)
        got = published(broker.bootstrap, total)
        ledgers = {m: json.loads(second.get(f"/api/missions/{m}/ledger")[1]) for m in expected}
        assert second.metric("missionwatch_replayed_messages_total") > 0  # state was rebuilt from the log
        rejected = consume(broker.bootstrap, "missionwatch.rejected", until=sum(expected_rejected.values()))
    finally:
        assert second.stop() == 0  # SIGTERM: a clean stop

    # nothing lost, nothing counted twice, no chain forked: one distinct record per (mission, seq),
    # equal to the replay's; a redelivered message republishes byte-identical records
    want = {rec_key(e) for events in expected.values() for e in events}
    assert set(got) == want, (sorted(want - set(got)), sorted(set(got) - want))
    for key, copies in got.items():
        assert len(set(copies)) == 1, key
    for events in expected.values():
        assert [json.loads(got[rec_key(e)][0]) for e in events] == events
    # on disk: each mission's out records in seq order, as published, once each, across the kill -9
    from missionwatch.signing import Keyring
    from missionwatch.stream.outlog import file_name
    from missionwatch.verify import verify_events

    ring = Keyring()
    ring.add(signer.key_id, signer.public_key, "monitor")
    for mission, events in expected.items():
        path = data / "out" / file_name(mission)
        assert [json.loads(ln) for ln in path.read_bytes().splitlines()] == events, mission
        report = verify_events(path, ring)
        assert report.ok and report.missions == {mission: last_seq(events)}, report.error
    # an analyst reading while the monitor wrote saw counts that only grew, up to the replay's
    assert len(counts) >= 2 and counts == sorted(counts) and counts[-1] == want_actions
    # the analysts' SQL over the data directory counts the same: the live ledger across the kill -9
    from missionwatch.store.query import open_ledger

    con = open_ledger(data=data)
    assert con.execute("SELECT count(*), count(DISTINCT receipt_id) FROM actions").fetchone() == (want_actions,) * 2
    live_cells = con.execute("SELECT mission_id, dimension, cohort, measure, value FROM ledger_totals "
                             "ORDER BY ALL").fetchall()
    assert live_cells == sorted((m, r["dimension"], r["cohort"], r["measure"], r["value"]) for m in expected
                                for r in replayed.ledger_totals(m))
    for table, schema in (("strategy_receipts", "missionwatch/strategy@1"), ("escalations", "missionwatch/escalation@1"),
                          ("controls", "missionwatch/control@1")):
        rows_in = dict(con.execute(f"SELECT mission_id, count(*) FROM {table} GROUP BY ALL").fetchall())
        want_n = {m: sum(e["schema"] == schema for e in events) for m, events in expected.items()}
        assert rows_in == {m: n for m, n in want_n.items() if n}, table
    # `missionwatch tail` reads the two topics back into chain order: what verify accepts
    (tmp_path / "keys.json").write_text(json.dumps(ring.to_json()))
    tailed = subprocess.run([sys.executable, "-m", "missionwatch.cli", "tail", "--broker", broker.url],
                            capture_output=True, timeout=120)
    assert tailed.returncode == 0, tailed.stderr
    (tmp_path / "tail.jsonl").write_bytes(tailed.stdout)
    report = verify_events(tmp_path / "tail.jsonl", ring)
    assert report.ok and report.missions == {m: last_seq(e) for m, e in expected.items()}, report.error
    by_mission: dict[str, list[Any]] = {}
    for ln in tailed.stdout.splitlines():
        by_mission.setdefault(json.loads(ln)["mission_id"], []).append(json.loads(ln))
    assert by_mission == expected
    one = subprocess.run([sys.executable, "-m", "missionwatch.cli", "tail", "--broker", broker.url,
                          "--mission", "m-gap"], capture_output=True, timeout=120)
    assert [json.loads(ln) for ln in one.stdout.splitlines()] == expected["m-gap"]
    # the ledger too: counts and every cell equal the replay's
    for mission, ledger in ledgers.items():
        assert ledger["actions"] > 2000 and ledger["cells"], mission
        assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", c["bucket_start"]) for c in ledger["cells"])
        assert ledger == json.loads(json.dumps(ledger_summary(replayed, mission))), mission
    assert {c: counted.get(f'missionwatch_rejected_total{{code="{c}"}}') for c in expected_rejected} == \
        dict(expected_rejected)
    rows = {(r["partition"], r["offset"], r.get("item")): r for r in (json.loads(v) for *_, v in rejected)}
    assert Counter(r["code"] for r in rows.values()) == expected_rejected
    assert all(r["topic"] == "missionwatch.in" and r["reason"] and r["record"] for r in rows.values())
