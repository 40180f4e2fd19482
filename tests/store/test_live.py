"""The running service's live ledger (store/live.py), without Kafka: the StreamCore the
service drives, fed message by message, committing at odd moments. It equals a replay's
ledger of the same input; a crash at any point of a write, a redelivery, a corrupt commit
and a second worker on the same directory leave no duplicate and no lost row; readers see
only whole commits."""

from __future__ import annotations

import itertools
import json
import threading
import zlib
from pathlib import Path
from typing import Any

import duckdb
import pytest

from missionwatch.monitor import Monitor
from missionwatch.replay import replay_file
from missionwatch.signing import Keyring, Signer, load_private_key
from missionwatch.sim import Campaign, write_campaign
from missionwatch.spec import SpecRegistry
from missionwatch.store import live as live_module
from missionwatch.store.live import LiveLedger, read_commits
from missionwatch.store.query import open_ledger
from missionwatch.stream.core import StreamCore
from tests.conftest import SPECS
from tests.store.test_duck import late_attributes

STREAMED = ("actions", "outcomes", "reviews", "strategy_receipts", "escalations", "controls", "duplicates")


def partition_of(line: bytes, partitions: int) -> int:
    """The service's keying by mission (a line with none goes to partition 0)."""
    try:
        rec = json.loads(line)
        mid = rec.get("mission_id") or (rec.get("items") or [{}])[0].get("mission_id")
    except (ValueError, AttributeError, IndexError):
        return 0
    return zlib.crc32(str(mid).encode()) % partitions if mid else 0


class Service:
    """A StreamCore with a live ledger under `data`, fed like the service feeds it."""

    def __init__(self, data: Path, make: Any, partitions: int = 1) -> None:
        self.data, self.partitions = data, partitions
        self.core = StreamCore(make, ledger=data / "ledger")
        self.core.assign(range(partitions))
        for p in range(partitions):
            self.core.activate(p)
        self.offsets = [0] * partitions

    def feed(self, lines: list[bytes], commit_every: int = 0) -> None:
        for i, ln in enumerate(lines, 1):
            p = partition_of(ln, self.partitions)
            self.core.process(p, self.offsets[p], ln)
            self.offsets[p] += 1
            if commit_every and i % commit_every == 0:
                self.commit()

    def commit(self) -> None:
        for led in self.core.ledgers.jobs():
            assert led.write()

    def close(self) -> None:
        for p in range(self.partitions):
            self.core.revoke(p)


def tables(con: duckdb.DuckDBPyConnection, drop: tuple[str, ...] = ("line", "partition")) -> dict[str, Any]:
    """Every table: its columns and types, and its rows sorted, less `drop`."""
    out = {}
    for (t,) in con.execute("SELECT table_name FROM duckdb_tables() UNION SELECT view_name FROM duckdb_views() "
                            "WHERE NOT internal AND NOT starts_with(view_name, '_') ORDER BY 1").fetchall():
        if t.startswith("_") or t in ("chain_audit", "out_records"):
            continue
        cols = [(c, k) for c, k, *_ in con.execute(f'DESCRIBE "{t}"').fetchall() if c not in drop]
        names = ", ".join(f'"{c}"' for c, _ in cols)
        out[t] = (cols, sorted(con.execute(f'SELECT {names} FROM "{t}"').fetchall(), key=repr))
    return out


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two simulated missions interleaved (one with a planted gap), signed, and their replay."""
    root = tmp_path_factory.mktemp("live")
    lines: list[list[bytes]] = []
    gate: Signer | None = None
    for seed, mid, gap, n in ((7, "m-gap", "age_band=65+", 3000), (4, "m-fair", None, 2000)):
        c = write_campaign(Campaign(mission_id=mid, seed=seed, actions=n, subjects=800, discount_gap=gap,
                                    discount_gap_factor=0.3), root / mid)
        gate = gate or load_private_key(c["gate-1"])  # one gateway key signs both missions
        lines.append([json.dumps(gate.sign({k: v for k, v in json.loads(ln).items() if k != "signature"})).encode()
                      for ln in c["receipts"].read_bytes().splitlines() if ln.strip()])
    mixed = [ln for pair in zip(*lines, strict=False) for ln in pair]
    keyring = Keyring.load(root / "m-gap" / "keyring.json")
    (root / "in.jsonl").write_bytes(b"\n".join(mixed) + b"\n")
    signer = load_private_key(root / "m-gap" / "monitor-1.pem")
    registry = SpecRegistry.load_dir(SPECS)

    def make() -> Monitor:
        return Monitor(registry, signer=signer, keyring=keyring)

    replay_file(root / "in.jsonl", root / "replay", make(), workers=0)
    return {"root": root, "lines": mixed, "make": make, "ledger": root / "replay" / "ledger.duckdb"}


def test_the_live_ledger_equals_the_replays_however_it_is_committed(campaign: dict[str, Any], tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """However committed, however many missions a commit unpacks at a time for its snapshots, and
    however many rows it puts aside as a segment (parts of their own)."""
    replayed = tables(duckdb.connect(str(campaign["ledger"]), read_only=True))
    assert len(replayed["actions"][1]) > 4000 and replayed["escalations"][1]
    for partitions, every, chunk, segment in ((1, 97, 1, 20_000), (3, 1000, 1000, 7), (2, 0, 1, 1), (1, 500, 2, 333)):
        monkeypatch.setattr(live_module, "SNAPSHOT_CHUNK", chunk)
        monkeypatch.setattr(live_module, "SEGMENT_ROWS", segment)
        data = tmp_path / f"d{partitions}-{every}-{chunk}-{segment}"
        svc = Service(data, campaign["make"], partitions)
        svc.feed(campaign["lines"], every)
        svc.close()  # a revocation commits what is left
        got = tables(open_ledger(data=data))
        assert got == replayed, (partitions, every, chunk, segment, [t for t in got if got[t] != replayed.get(t)])
        if segment < 100:  # commits of several parts each
            assert len(list((data / "ledger" / "actions").iterdir())) > 20 * max(1, len(campaign["lines"]) // every
                                                                                  if every else 1)


def test_hostile_input_lands_as_in_a_replay(tmp_path: Path, registry: SpecRegistry, keys: dict[str, Signer]) -> None:
    """Attributes first seen late and clashing in case, duplicates, rejections, a batch with a bad
    item, outcomes before their subject: the live ledger has the replay's rows, `line` is the
    offset (the replay's line less one), and an outcome is attributed as its subject was known
    when it came."""
    lines = [ln.encode() for ln in late_attributes()]
    (tmp_path / "in.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    replay_file(tmp_path / "in.jsonl", tmp_path / "r", Monitor(registry, signer=keys["monitor"],
                                                               allow_unsigned=True), workers=0)
    svc = Service(tmp_path / "d", lambda: Monitor(registry, signer=keys["monitor"], allow_unsigned=True))
    svc.feed(lines, commit_every=4)
    svc.close()
    replayed = tables(duckdb.connect(str(tmp_path / "r" / "ledger.duckdb"), read_only=True), drop=("partition",))
    live = tables(open_ledger(data=tmp_path / "d"), drop=("partition",))
    assert [c for c, _ in live["actions"][0]] == [c for c, _ in replayed["actions"][0]]
    assert "Segment" not in [c for c, _ in live["actions"][0]]  # cohort_Segment, as in the replay
    for t in replayed:
        if t not in ("outcomes", "rejected", "ledger", "ledger_totals", "missions"):
            shift = [tuple(v - 1 if c == "line" and v is not None else v for (c, _), v in zip(replayed[t][0], r,
                                                                                         strict=True))
                     for r in replayed[t][1]]
            assert live[t][1] == sorted(shift, key=repr), t
    assert live["ledger"] == replayed["ledger"] and live["missions"] == replayed["missions"]
    # the outcome whose subject came later: unattributed here, settled by the replay at its end
    out_cols = [c for c, _ in live["outcomes"][0]]
    late = {r[out_cols.index("outcome_id")]: r[out_cols.index("attributed")] for r in live["outcomes"][1]}
    assert late["o-early"] is False and late["o-own"] is True
    assert len(live["outcomes"][1]) == len(replayed["outcomes"][1])
    codes = sorted(r[2] for r in live["rejected"][1])
    assert len(codes) == 4  # a replay skips the blank line; as a message, an empty one is malformed
    assert codes == sorted([r[2] for r in replayed["rejected"][1]] + ["malformed_json"])


def test_a_crash_anywhere_in_a_write_loses_and_repeats_nothing(campaign: dict[str, Any], tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Each write of a commit fails in turn (a part, a segment's part, a snapshot piece, the commit
    itself), as a crash there would leave it; the worker restarts from the log: the ledger equals
    the replay's."""
    from missionwatch.store import live

    monkeypatch.setattr(live, "SEGMENT_ROWS", 400)  # commits of several segments
    monkeypatch.setattr(live, "SNAPSHOT_CHUNK", 1)  # and of snapshots in pieces
    replayed = tables(duckdb.connect(str(campaign["ledger"]), read_only=True))
    lines = campaign["lines"]
    real = live._replace
    # the writes of this job, in order: p0 segment parts 0-2, its snapshot 3-4, its commit 5, then p1's
    for failing in (1, 4, 5, 8):  # a second segment, a snapshot, a commit, the other partition's segment
        data = tmp_path / f"crash{failing}"
        svc = Service(data, campaign["make"], 2)
        svc.feed(lines[:1500], commit_every=300)
        def flaky(path: Path, data: bytes | None = None, write: Any = None, _n: int = failing,
                  _calls: list[int] = [0]) -> None:  # noqa: B006 - one counter per crash point
            _calls[0] += 1
            if _calls[0] == _n + 1:
                raise OSError(28, "No space left on device")
            real(path, data, write)

        monkeypatch.setattr(live, "_replace", flaky)
        svc.feed(lines[1500:3000])
        for led in svc.core.ledgers.jobs():
            led.write()  # one write fails: kept pending, as the crash leaves it
        monkeypatch.setattr(live, "_replace", real)
        for led in svc.core.ledgers.values():  # kill -9: the lock goes with the process
            led._lock.close()
        # restart: a fresh core fed the whole log (the catch-up), then the rest live
        again = Service(data, campaign["make"], 2)
        again.feed(lines)
        again.close()
        assert tables(open_ledger(data=data)) == replayed, failing


def test_a_writer_that_fails_otherwise_than_the_disk_keeps_the_job(campaign: dict[str, Any], tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    """Not only a full disk: whatever the Parquet writer raises leaves the job pending (retried
    first at the next commit), said in the log with its traceback; the ledger ends as the replay's."""
    import logging

    from missionwatch.store import live

    replayed = tables(duckdb.connect(str(campaign["ledger"]), read_only=True))
    lines = campaign["lines"]
    real = live._replace

    def broken(path: Path, data: bytes | None = None, write: Any = None) -> None:
        raise RuntimeError("the writer broke")

    svc = Service(tmp_path, campaign["make"], 2)
    svc.feed(lines[:1500])
    monkeypatch.setattr(live, "_replace", broken)
    with caplog.at_level(logging.ERROR, logger="missionwatch"):
        jobs = svc.core.ledgers.jobs()
        assert jobs and not any([led.write() for led in jobs])
    assert "RuntimeError: the writer broke" in caplog.text and "Traceback" in caplog.text
    assert all(led.pending for led in jobs)
    monkeypatch.setattr(live, "_replace", real)
    svc.feed(lines[1500:])
    svc.commit()  # the pending jobs first, then the new ones
    svc.close()
    assert tables(open_ledger(data=tmp_path)) == replayed


def test_a_corrupt_commit_is_rebuilt_from_the_log(campaign: dict[str, Any], tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "d"
    svc = Service(data, campaign["make"])
    svc.feed(campaign["lines"][:2000], commit_every=500)
    svc.close()
    (data / "ledger" / "commits" / "p0000.json").write_text('{"version": 1, "partition": 0, "offset": "12"}')
    again = Service(data, campaign["make"])
    assert "rebuilt from the log" in caplog.text
    assert again.core.ledgers[0].committed == -1
    assert not list((data / "ledger" / "actions").glob("p0000-*"))
    again.feed(campaign["lines"])
    again.close()
    assert tables(open_ledger(data=data)) == tables(duckdb.connect(str(campaign["ledger"]), read_only=True))


def test_a_second_worker_on_the_same_directory_keeps_out(campaign: dict[str, Any], tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    first = Service(tmp_path, campaign["make"])
    second = Service(tmp_path, campaign["make"])
    assert 0 in first.core.ledgers and 0 not in second.core.ledgers
    assert "another worker on the same --data holds it" in caplog.text
    with pytest.raises(OSError):
        LiveLedger(tmp_path / "ledger", 0, campaign["make"]())
    first.close()  # the partition moves: the next holder takes the ledger on from the commit
    second.core.assign([0])
    assert 0 in second.core.ledgers


def test_readers_see_whole_commits_that_never_go_back(campaign: dict[str, Any], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer commits every 50 messages while a reader opens the ledger again and again: every
    count is one a commit made (never more than was fed), and never less than the last. Each
    snapshot is in pieces of one mission."""
    monkeypatch.setattr(live_module, "SNAPSHOT_CHUNK", 1)
    data = tmp_path / "d"
    svc = Service(data, campaign["make"], 2)
    lines = campaign["lines"]
    done = threading.Event()
    seen: list[tuple[int, int, int, float]] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            while not done.is_set() or len(seen) < 5:
                con = open_ledger(data=data)
                seen.append(con.execute(
                    "SELECT (SELECT count(*) FROM actions), (SELECT count(*) FROM strategy_receipts), "
                    "(SELECT count(*) FROM missions), "
                    "(SELECT coalesce(sum(value), 0) FROM ledger WHERE dimension = '*' AND measure = 'actions')").fetchone())
                con.close()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        svc.feed(lines, commit_every=50)
        svc.close()
    finally:
        done.set()
        reader.join(120)
    assert not errors, errors
    assert len(seen) >= 5
    for before, after in itertools.pairwise(seen):
        assert all(a >= b for a, b in zip(after, before, strict=True)), (before, after)
    for actions, _, _, cells in seen:
        assert actions <= 5000 and cells == actions  # the cells count exactly the actions the rows hold
    final = open_ledger(data=data).execute("SELECT count(*) FROM actions").fetchone()
    assert final == duckdb.connect(str(campaign["ledger"]), read_only=True).execute(
        "SELECT count(*) FROM actions").fetchone()
    assert sorted(read_commits(data / "ledger")) == [0, 1]


def test_snapshot_pieces_are_kept_with_their_commit_and_a_version_1_commit_still_reads(
        campaign: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Snapshots in pieces (one mission each here): a commit names how many, old commits' pieces
    all go once `KEEP_SNAPSHOTS` newer ones are written, and a commit as version 1 wrote it (one
    file a snapshot, no `snapshot_parts`) reads as before."""
    monkeypatch.setattr(live_module, "SNAPSHOT_CHUNK", 1)
    data = tmp_path / "d"
    svc = Service(data, campaign["make"])
    svc.feed(campaign["lines"], commit_every=300)
    svc.close()
    commit = read_commits(data / "ledger")[0]
    assert commit.snapshot_parts == 2 and len(commit.snapshot_files()) == 2
    for d in ("missions", "ledger_open"):
        files = sorted(f.name for f in (data / "ledger" / d).iterdir())
        assert len(files) <= live_module.KEEP_SNAPSHOTS * 2 and set(commit.snapshot_files()) <= set(files), files
    whole = tables(open_ledger(data=data))
    assert whole == tables(duckdb.connect(str(campaign["ledger"]), read_only=True))
    # the same snapshot as one file per table, under a version 1 commit
    root = data / "ledger"
    for d in ("missions", "ledger_open"):
        merged = duckdb.sql(f"SELECT * FROM read_parquet({[str(root / d / f) for f in commit.snapshot_files()]})")
        merged.write_parquet(str(root / d / "p0000-999999999999.parquet"))
    old = {**commit.to_json(), "version": 1, "snapshot": "p0000-999999999999.parquet"}
    del old["snapshot_parts"]
    (root / "commits" / "p0000.json").write_text(json.dumps(old))
    assert read_commits(root)[0].snapshot_parts == 1
    assert tables(open_ledger(data=data)) == whole
    for bad in (0, -1, "2", 2.0, True):
        (root / "commits" / "p0000.json").write_text(json.dumps({**commit.to_json(), "snapshot_parts": bad}))
        assert read_commits(root) == {}, bad
