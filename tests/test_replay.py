"""Replay end to end through the CLI, byte determinism, the DuckDB ledger, and verify
refusing every kind of tampering."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

MW = [sys.executable, "-m", "missionwatch.cli"]


def mw(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*MW, *args], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("camp")
    mw("simulate", "--out", str(d / "sim"), "--actions", "4000", "--subjects", "800", "--seed", "3",
       "--discount-gap", "age_band=65+", "--discount-gap-factor", "0.2")
    src = (d / "sim" / "receipts.jsonl").read_text().splitlines(keepends=True)
    junk = ["not json\n", src[5], '{"schema": "missionwatch/action@1"}\n']  # bad, duplicate, invalid
    (d / "input.jsonl").write_text("".join(src[:100] + junk + src[100:]))
    return d


def replay(campaign: Path, out: str, *extra: str) -> Path:
    mw("replay", str(campaign / "input.jsonl"), "--out", str(campaign / out), "--keys",
       str(campaign / "sim" / "keyring.json"), "--signing-key", str(campaign / "sim" / "monitor-1.pem"), *extra)
    return campaign / out


@pytest.fixture(scope="module")
def replayed(campaign: Path) -> Path:
    """The campaign replayed into `a`, twice: a replay replaces what an earlier one wrote there
    (the tests below read one replay's events, rejections and ledger)."""
    replay(campaign, "a")
    return replay(campaign, "a")


def test_replay_is_byte_deterministic(campaign: Path, replayed: Path) -> None:
    a, b = replayed, replay(campaign, "b")
    assert (a / "events.jsonl").read_bytes() == (b / "events.jsonl").read_bytes()
    assert (a / "events.jsonl").stat().st_size > 0
    # signatures checked in worker processes or in-process: the same bytes out
    c, d = replay(campaign, "c", "--workers", "0"), replay(campaign, "d", "--workers", "3")
    for name in ("events.jsonl", "rejected.jsonl"):
        assert (a / name).read_bytes() == (c / name).read_bytes() == (d / name).read_bytes()


def test_no_ledger_writes_the_same_events_and_no_stale_ledger(campaign: Path, replayed: Path) -> None:
    a = replayed
    out = campaign / "no-ledger"
    out.mkdir()
    (out / "ledger.duckdb").write_text("an earlier replay's ledger")
    replay(campaign, "no-ledger", "--no-ledger")
    assert not (out / "ledger.duckdb").exists()
    for name in ("events.jsonl", "rejected.jsonl"):
        assert (a / name).read_bytes() == (out / name).read_bytes()


def test_rejected_lines_are_kept_with_reasons(replayed: Path) -> None:
    out = replayed
    rows = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["code"]) for r in rows] == [(101, "malformed_json"), (103, "invalid_field")]
    assert rows[0]["record"] == "not json" and all(r["reason"] for r in rows)


def test_ledger_tables(replayed: Path) -> None:
    out = replayed
    con = duckdb.connect(str(out / "ledger.duckdb"), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    assert {"missions", "actions", "outcomes", "reviews", "strategy_receipts", "escalations", "controls",
            "ledger", "rejected", "duplicates"} <= tables
    cols = [r[0] for r in con.execute("DESCRIBE actions").fetchall()]
    for c in ("receipt_id", "mission_id", "agent_id", "action_type", "decision", "subject_id",
              "occurred_at", "segment", "tenure_band", "age_band", "region", "discount_pct", "delay_hours"):
        assert c in cols
    n_actions = con.execute("SELECT count(*) FROM actions").fetchone()[0]
    assert n_actions == 4000
    assert con.execute("SELECT count(*) FROM duplicates").fetchone()[0] == 1
    ledger_actions = con.execute(
        "SELECT value FROM ledger_totals WHERE dimension='*' AND measure='actions'").fetchone()[0]
    assert ledger_actions == n_actions
    by_age = dict(con.execute("SELECT cohort, value FROM ledger_totals WHERE dimension='age_band' "
                              "AND measure='type:offer.discount'").fetchall())
    direct = dict(con.execute("SELECT age_band, count(*) FROM actions WHERE action_type='offer.discount' "
                              "GROUP BY 1").fetchall())
    assert by_age == {k: float(v) for k, v in direct.items()}
    esc = con.execute("SELECT detector, evidence->>'cohort' FROM escalations").fetchall()
    assert ("fairness:discount_rate", "age_band=65+") in esc


def test_verify_accepts_and_refuses_tampering(campaign: Path, replayed: Path) -> None:
    out = replayed
    keys = str(campaign / "sim" / "keyring.json")
    events = (out / "events.jsonl").read_text().splitlines()
    assert len(events) >= 3
    assert mw("verify", str(out / "events.jsonl"), "--keys", keys).returncode == 0

    def check(lines: list[str], expect: str) -> None:
        p = out / "tampered.jsonl"
        p.write_text("\n".join(lines) + "\n")
        r = mw("verify", str(p), "--keys", keys, check=False)
        assert r.returncode == 1 and expect in r.stderr, r.stderr

    rec = json.loads(events[1])
    rec["review_status"] = "continue"
    check([events[0], json.dumps(rec), *events[2:]], "seq 1: the hash does not match")
    check([events[0], *events[2:]], "seq 2: expected seq 1")
    check([events[1], events[0], *events[2:]], "seq 1: expected seq 0")
    from missionwatch.signing import Signer
    forger = Signer.generate("monitor-1")
    check([events[0], json.dumps(forger.seal(rec)), *events[2:]], "seq 1: the signature by 'monitor-1'")
    rogue = Signer.generate("rogue")
    check([events[0], json.dumps(rogue.seal(rec)), *events[2:]], "not in the keyring")


def test_ephemeral_key_is_published(campaign: Path) -> None:
    out = campaign / "eph"
    mw("replay", str(campaign / "input.jsonl"), "--out", str(out), "--keys", str(campaign / "sim" / "keyring.json"))
    assert mw("verify", str(out / "events.jsonl"), "--keys", str(out / "monitor-key.json")).returncode == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["replay", "nope.jsonl", "--out", "x"], "no such input file"),
        (["replay", "{input}", "--out", "{out}", "--specs", "{bad_specs}"], "default.toml"),
        (["replay", "{input}", "--out", "{out}", "--keys", "{input}"], "keyring"),
    ],
)
def test_unusable_arguments_exit_2(campaign: Path, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "specs").mkdir()
    filled = [a.format(input=campaign / "input.jsonl", out=tmp_path / "o", bad_specs=tmp_path / "specs")
              for a in args]
    r = mw(*filled, check=False)
    assert r.returncode == 2 and message in r.stderr


def test_every_command_has_help() -> None:
    for cmd in (["--help"], ["replay", "--help"], ["verify", "--help"], ["simulate", "--help"],
                ["spec", "check", "--help"], ["explain", "--help"]):
        r = mw(*cmd)
        assert "Usage" in r.stdout
