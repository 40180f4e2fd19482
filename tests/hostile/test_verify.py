"""Hostile input to `missionwatch verify`: empty and cut files, removed, reordered and repeated
records, a deleted mission chain and a removed resume (caught with --expect), malformed
expectation files, and bytes meant to break the reader rather than a chain.

The log is a real replay of two simulated missions, m-1 paused and resumed by a reviewer.
Every case runs the library function and the CLI (human and --json output, which must agree
with the library); a few also run the installed command in a subprocess for its exit code."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from missionwatch.cli import app
from missionwatch.signing import Keyring, load_private_key
from missionwatch.verify import ExpectError, VerifyReport, load_expectation, verify_events
from tests.conftest import line, review, stamp
from tests.test_replay import mw


@dataclass(frozen=True)
class Log:
    keyring: Path
    monitor_pem: Path
    lines: list[str]  # events.jsonl, one out record per line

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.lines]

    def last_seqs(self) -> dict[str, int]:
        """Counted, not read: a chain from seq 0 with n records ends at seq n - 1."""
        return {m: n - 1 for m, n in Counter(r["mission_id"] for r in self.records()).items()}


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Log:
    d = tmp_path_factory.mktemp("hostile")
    mw("simulate", "--out", str(d / "a"), "--actions", "1500", "--subjects", "300", "--seed", "3",
       "--mission-id", "m-1")
    mw("simulate", "--out", str(d / "b"), "--actions", "800", "--subjects", "200", "--seed", "4",
       "--mission-id", "m-2")
    gate, reviewer = (load_private_key(d / "a" / f"{k}.pem") for k in ("gate-1", "reviewer-1"))
    # m-2's receipts re-signed with m-1's gate key, so one keyring holds every key
    m2 = [line(gate.sign(json.loads(x))) for x in (d / "b" / "receipts.jsonl").read_text().splitlines()]
    later = stamp(40 * 86_400)
    reviews = [line(reviewer.sign({**review("pause"), "occurred_at": later})),
               line(reviewer.sign({**review("resume", "rv-1", rid="rv-2"), "occurred_at": later}))]
    (d / "input.jsonl").write_text("\n".join([*(d / "a" / "receipts.jsonl").read_text().splitlines(),
                                              *m2, *reviews]) + "\n")
    mw("replay", str(d / "input.jsonl"), "--out", str(d / "out"), "--keys", str(d / "a" / "keyring.json"),
       "--signing-key", str(d / "a" / "monitor-1.pem"))
    events = (d / "out" / "events.jsonl").read_text().splitlines()
    # the chains: the transparency log's checkpoints (outside them) are tests/test_transparency.py's
    lines = [ln for ln in events if json.loads(ln)["schema"] != "missionwatch/checkpoint@1"]
    assert len(lines) < len(events)
    assert not (d / "out" / "rejected.jsonl").read_text()
    return Log(d / "a" / "keyring.json", d / "a" / "monitor-1.pem", lines)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)  # a traceback fails the test


def check(log: Log, tmp_path: Path, content: str | bytes,
          expect: dict[str, int] | None = None) -> VerifyReport:
    """Verify `content` with the library and the CLI; both must say the same, with the exit
    code of the contract (0 whole, 1 broken). Returns the library's report."""
    events = tmp_path / "events.jsonl"
    events.write_bytes(content.encode() if isinstance(content, str) else content)
    args = ["verify", str(events), "--keys", str(log.keyring)]
    if expect is not None:
        (tmp_path / "expect.json").write_text(json.dumps(expect))
        args += ["--expect", str(tmp_path / "expect.json")]
    report = verify_events(events, Keyring.load(log.keyring), expect)
    as_json, human = cli(*args, "--json"), cli(*args)
    assert json.loads(as_json.stdout) == report.to_json()
    assert as_json.exit_code == human.exit_code == (0 if report.ok else 1)
    if report.ok:
        assert human.stdout.startswith(f"ok: {report.records} records in {len(report.missions)} ")
        for mission, seq in report.missions.items():
            assert f"mission {mission!r} -> last seq {seq}\n" in human.stdout
    else:
        assert f"{events}: {report.error}" in human.stderr and not human.stdout
    return report


def text(lines: list[str]) -> str:
    return "".join(x + "\n" for x in lines)


def test_a_whole_log_verifies_and_names_each_missions_last_seq(log: Log, tmp_path: Path) -> None:
    controls = [r["state"] for r in log.records() if r["schema"] == "missionwatch/control@1"]
    assert controls == ["paused", "running"] and set(log.last_seqs()) == {"m-1", "m-2"}
    report = check(log, tmp_path, text(log.lines))
    assert report.ok and report.records == len(log.lines) and report.missions == log.last_seqs()
    assert check(log, tmp_path, text(log.lines), expect=log.last_seqs()).ok
    r = mw("verify", str(tmp_path / "events.jsonl"), "--keys", str(log.keyring), "--json")
    assert json.loads(r.stdout) == {"ok": True, "records": len(log.lines), "missions": log.last_seqs(),
                                    "error": None}


@pytest.mark.parametrize("content", ["", "\n", " \n\t\n\r\n"], ids=["empty", "newline", "whitespace"])
def test_a_file_without_records_is_refused(log: Log, tmp_path: Path, content: str) -> None:
    report = check(log, tmp_path, content)
    assert (report.ok, report.records, dict(report.missions)) == (False, 0, {})
    assert report.error is not None and report.error.startswith("no out records")
    assert not check(log, tmp_path, content, expect=log.last_seqs()).ok
    r = mw("verify", str(tmp_path / "events.jsonl"), "--keys", str(log.keyring), check=False)
    assert r.returncode == 1 and "no out records" in r.stderr


def test_a_last_line_cut_mid_json_is_refused(log: Log, tmp_path: Path) -> None:
    last = log.lines[-1]
    report = check(log, tmp_path, text(log.lines[:-1]) + last[: len(last) // 2])
    assert report.error is not None
    assert report.error.startswith(f"line {len(log.lines)}: not valid JSON")
    assert report.error.endswith("as a file cut short does")
    assert report.records == len(log.lines) - 1


def test_a_line_cut_mid_file_is_refused(log: Log, tmp_path: Path) -> None:
    torn = [*log.lines[:3], log.lines[3][:40], *log.lines[4:]]
    report = check(log, tmp_path, text(torn))
    assert report.error is not None and report.error.startswith("line 4: not valid JSON")
    assert "cut short" not in report.error


def test_a_removed_last_record_is_caught_only_with_expect(log: Log, tmp_path: Path) -> None:
    mission = json.loads(log.lines[-1])["mission_id"]
    want = log.last_seqs()[mission]
    report = check(log, tmp_path, text(log.lines[:-1]))
    assert report.ok and report.missions[mission] == want - 1  # the chain shows no trace
    report = check(log, tmp_path, text(log.lines[:-1]), expect=log.last_seqs())
    assert report.error == (f"mission {mission!r}: the chain ends at seq {want - 1}, expected at least "
                            f"seq {want}: 1 record is missing from its end (the file was cut short, or "
                            "trailing records such as a control signal were removed)")


def test_a_removed_resume_is_caught_with_expect(log: Log, tmp_path: Path) -> None:
    records = log.records()
    i = next(i for i, r in enumerate(records) if r["schema"] == "missionwatch/control@1"
             and r["state"] == "running")
    assert {r["mission_id"] for r in records[i:]} == {"m-1"}  # the resume and what follows end the file
    cut = log.lines[:i]
    assert [r["state"] for r in records[:i] if r["schema"] == "missionwatch/control@1"] == ["paused"]
    report = check(log, tmp_path, text(cut))
    assert report.ok and report.missions["m-1"] == records[i]["seq"] - 1
    report = check(log, tmp_path, text(cut), expect=log.last_seqs())
    gone = log.last_seqs()["m-1"] - records[i]["seq"] + 1
    assert report.error is not None and report.error.startswith(
        f"mission 'm-1': the chain ends at seq {records[i]['seq'] - 1}, expected at least seq "
        f"{log.last_seqs()['m-1']}: {gone} records are missing from its end")
    r = mw("verify", str(tmp_path / "events.jsonl"), "--keys", str(log.keyring), "--expect",
           str(tmp_path / "expect.json"), check=False)
    assert r.returncode == 1 and "mission 'm-1': the chain ends at seq" in r.stderr


def test_a_deleted_mission_chain_is_caught_with_expect(log: Log, tmp_path: Path) -> None:
    kept = [x for x in log.lines if json.loads(x)["mission_id"] != "m-2"]
    report = check(log, tmp_path, text(kept))
    assert report.ok and "m-2" not in report.missions
    report = check(log, tmp_path, text(kept), expect=log.last_seqs())
    assert report.error == (f"mission 'm-2': expected its chain up to seq {log.last_seqs()['m-2']}, "
                            "but the file holds no record of this mission (its chain was deleted)")


def test_the_expectation_is_a_lower_bound(log: Log, tmp_path: Path) -> None:
    seqs = log.last_seqs()
    assert check(log, tmp_path, text(log.lines), expect={"m-1": 0}).ok  # a snapshot taken earlier
    assert check(log, tmp_path, text(log.lines), expect={"m-2": seqs["m-2"]}).ok
    report = check(log, tmp_path, text(log.lines), expect={"m-2": seqs["m-2"] + 1, "m-1": seqs["m-1"] + 2})
    assert report.error is not None and report.error.startswith("mission 'm-2': the chain ends at seq")
    assert report.error.endswith(" (1 more expected mission falls short)")
    report = check(log, tmp_path, text(log.lines), expect={"m-1": seqs["m-1"], "m-9": 0})
    assert report.error is not None and report.error.startswith("mission 'm-9': expected its chain")


def _pair(log: Log, same: bool) -> int:
    """Index i of adjacent records i, i+1 of the same mission (or of different missions)."""
    missions = [r["mission_id"] for r in log.records()]
    return next(i for i in range(len(missions) - 1) if (missions[i] == missions[i + 1]) == same)


def test_a_reordered_record_breaks_its_chain(log: Log, tmp_path: Path) -> None:
    i = _pair(log, same=True)
    first = log.records()[i]
    swapped = [*log.lines[:i], log.lines[i + 1], log.lines[i], *log.lines[i + 2:]]
    report = check(log, tmp_path, text(swapped))
    assert report.error == (f"line {i + 1}: mission {first['mission_id']!r} seq {first['seq'] + 1}: "
                            f"expected seq {first['seq']}; a record is missing before it")


def test_records_of_different_missions_may_interleave(log: Log, tmp_path: Path) -> None:
    i = _pair(log, same=False)
    swapped = [*log.lines[:i], log.lines[i + 1], log.lines[i], *log.lines[i + 2:]]
    assert check(log, tmp_path, text(swapped), expect=log.last_seqs()).ok


@pytest.mark.parametrize("where", ["middle", "end"])
def test_a_duplicated_line_breaks_its_chain(log: Log, tmp_path: Path, where: str) -> None:
    i = 2 if where == "middle" else len(log.lines) - 1
    rec = log.records()[i]
    doubled = [*log.lines[: i + 1], log.lines[i], *log.lines[i + 1:]]
    report = check(log, tmp_path, text(doubled))
    assert report.error == (f"line {i + 2}: mission {rec['mission_id']!r} seq {rec['seq']}: expected seq "
                            f"{rec['seq'] + 1}; it is out of order or repeated")


def test_a_duplicate_key_is_refused_though_the_last_value_verifies(log: Log, tmp_path: Path) -> None:
    i = next(i for i, r in enumerate(log.records()) if r["schema"] == "missionwatch/strategy@1")
    spliced = '{"review_status":"terminated",' + log.lines[i][1:]
    assert json.loads(spliced) == log.records()[i]  # Python keeps the last value: the hash would match
    report = check(log, tmp_path, text([*log.lines[:i], spliced, *log.lines[i + 1:]]))
    assert report.error == (f"line {i + 1}: the JSON is ambiguous: key 'review_status' appears more "
                            "than once in one object (parsers disagree on which value counts)")


@pytest.mark.parametrize(("content", "why"), [
    (b"\xff\xfe{}\n", "line 1: not UTF-8 text"),
    (b"[" * 100_000 + b"\n", "line 1: not valid JSON (nested too deeply)"),
    (b'"a string"\n', "line 1: not a missionwatch out record"),
    (b'{"schema": "missionwatch/action@1"}\n', "line 1: not a missionwatch out record"),
    (b'{"schema": "missionwatch/control@1", "mission_id": "m-1", "seq": NaN}\n',
     "line 1: mission 'm-1' seq nan: mission_id or seq is missing"),
    (b'{"schema": "missionwatch/control@1", "mission_id": "m-1", "seq": 0, "x": NaN}\n',
     "line 1: mission 'm-1' seq 0: cannot be canonicalized"),
])
def test_bytes_meant_to_break_the_reader_are_named(log: Log, tmp_path: Path, content: bytes, why: str) -> None:
    report = check(log, tmp_path, content)
    assert report.error is not None and report.error.startswith(why), report.error


@pytest.mark.parametrize("mission", ["[/]", "[bold]m", "m\x1b[2Jx"])
def test_mission_ids_are_printed_not_interpreted(log: Log, tmp_path: Path, mission: str) -> None:
    monitor = load_private_key(log.monitor_pem)
    body = {"schema": "missionwatch/control@1", "mission_id": mission, "state": "paused", "cause": "x",
            "issued_at": stamp(0)}
    zero = monitor.seal({**body, "seq": 0, "prev_hash": None})
    one = monitor.seal({**body, "seq": 1, "prev_hash": zero["hash"]})
    assert check(log, tmp_path, text([line(zero), line(one)])).missions == {mission: 1}
    report = check(log, tmp_path, text([line(one)]))
    assert report.error == f"line 1: mission {mission!r} seq 1: expected seq 0; a record is missing before it"


@pytest.mark.parametrize(("content", "why"), [
    ("[1, 2]", 'must be a JSON object mapping mission_id to its last seq, e.g. '
               '{"retention-campaign-2026-q2": 41}; got an array'),
    ('"m-1"', 'must be a JSON object mapping mission_id to its last seq, e.g. '
              '{"retention-campaign-2026-q2": 41}; got "m-1"'),
    ("{}", "names no mission; an expectation must name at least one"),
    ('{"m-1": 7, "m-2": 3, "m-1": 7}', "mission 'm-1' appears twice"),
    ('{"m-1": -1}', "mission 'm-1': the last seq must be a non-negative integer, got -1"),
    ('{"m-1": 7.0}', "mission 'm-1': the last seq must be a non-negative integer, got 7.0"),
    ('{"m-1": "7"}', "mission 'm-1': the last seq must be a non-negative integer, got \"7\""),
    ('{"m-1": true}', "mission 'm-1': the last seq must be a non-negative integer, got true"),
    ('{"m-1": null}', "mission 'm-1': the last seq must be a non-negative integer, got null (a mission "
                      "with no out records yet has no seq to expect: leave it out)"),
    ('{"m-1": {"seq": 7}}', "mission 'm-1': the last seq must be a non-negative integer, got an object"),
    ('{"m-1": 7', "not valid JSON (Expecting ',' delimiter at line 1 column 10)"),
    ("", "not valid JSON (Expecting value at line 1 column 1)"),
    (b"\xff{}", "not UTF-8 text (invalid start byte at byte 0)"),
])
def test_a_malformed_expectation_is_a_usage_error(log: Log, tmp_path: Path, content: str | bytes,
                                                  why: str) -> None:
    path = tmp_path / "expect.json"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    with pytest.raises(ExpectError) as exc:
        load_expectation(path)
    assert str(exc.value) == f"{path}: {why}"
    (tmp_path / "events.jsonl").write_text(text(log.lines))
    r = cli("verify", str(tmp_path / "events.jsonl"), "--keys", str(log.keyring), "--expect", str(path), "--json")
    assert r.exit_code == 2 and not r.stdout and f"{path}: {why}" in r.stderr


def _keyring_without_monitor(tmp_path: Path, log: Log) -> Path:
    ring = json.loads(log.keyring.read_text())
    ring["keys"] = [k for k in ring["keys"] if k["role"] != "monitor"]
    (tmp_path / "gates.json").write_text(json.dumps(ring))
    return tmp_path / "gates.json"


@pytest.mark.parametrize(("args", "why"), [
    (["{dir}/nope.jsonl", "--keys", "{keys}"], "nope.jsonl: no such file"),
    (["{dir}", "--keys", "{keys}"], ": is a directory, not an events file"),
    (["{events}", "--keys", "{dir}/nope.json"], "nope.json: cannot read the keyring"),
    (["{events}", "--keys", "{events}"], "the keyring is not valid JSON"),
    (["{events}", "--keys", "{gates}"], "gates.json: the keyring holds no monitor key"),
    (["{events}", "--keys", "{keys}", "--expect", "{dir}/nope.json"],
     "nope.json: cannot read the expectation (No such file or directory)"),
    (["{events}", "--keys", "{keys}", "--expect", "{dir}"], ": cannot read the expectation (Is a directory)"),
])
def test_unusable_arguments_exit_2(log: Log, tmp_path: Path, args: list[str], why: str) -> None:
    (tmp_path / "events.jsonl").write_text(text(log.lines))
    gates = _keyring_without_monitor(tmp_path, log)
    filled = [a.format(dir=tmp_path, keys=log.keyring, events=tmp_path / "events.jsonl", gates=gates)
              for a in args]
    r = cli("verify", *filled, "--json")
    assert r.exit_code == 2 and not r.stdout and why in r.stderr, r.stderr
    proc = mw("verify", *filled, check=False)
    assert proc.returncode == 2 and why in proc.stderr
