"""The streaming ledger writer: the same ledger.duckdb whatever its batch size (attributes
first seen late, a mission with no actions, outcomes attributed late, rejections,
duplicates, batch envelopes), never more than a batch of rows in memory, nothing
left behind by a failed replay, and a build whose memory stops growing with the ledger."""

from __future__ import annotations

import hashlib
import multiprocessing
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from missionwatch.monitor import Monitor
from missionwatch.records import SCHEMA_STRATEGY
from missionwatch.replay import replay_file, replay_lines
from missionwatch.signing import Signer
from missionwatch.spec import SpecRegistry
from missionwatch.store import LedgerWriter, write_ledger
from tests.conftest import SPECS, action, line, stamp


def mission(mid: str) -> dict[str, Any]:
    return {"schema": "missionwatch/mission@1", "mission_id": mid, "spec": "retention", "objective": "renewals",
            "proxy_metric": "renewal conversion", "constraints": ["no obstruction"], "owner": "risk:team",
            "human_delegate": "user:dana", "started_at": stamp(0)}


def outcome(oid: str, subject: str, t: int, cohort: dict[str, str] | None = None,
            mid: str = "m-1") -> dict[str, Any]:
    subj: dict[str, Any] = {"id": subject, **({"cohort": cohort} if cohort is not None else {})}
    return {"schema": "missionwatch/outcome@1", "outcome_id": oid, "mission_id": mid, "subject": subj,
            "outcome_type": "complaint", "value": 1, "occurred_at": stamp(t)}


def late_attributes() -> list[str]:
    """A campaign whose cohort and numeric attributes keep appearing, with every kind of line."""
    early = {"segment": "smb", "age_band": "65+"}
    recs: list[dict[str, Any] | str] = [mission("m-1"), mission("m-empty")]
    recs += [action(i, subject=f"cust-{i % 4}", cohort=early, discount_pct=5 * i, template="renewal-v1")
             for i in range(6)]
    recs += [outcome("o-early", "cust-late", 400),  # its subject's first action comes later
             outcome("o-own", "cust-0", 410, {"age_band": "18-34", "channel": "phone"}),
             action(6, subject="cust-bare", cohort={}),  # a subject without a cohort, for now
             outcome("o-bare", "cust-bare", 420), outcome("o-never", "cust-nobody", 430),
             "not json", '{"schema": "missionwatch/action@1"}', ""]
    late = {"segment": "mid", "age_band": "18-34", "region": "north", "Segment": "x", "line": "l-1"}
    recs += [action(i, subject=f"cust-{i % 5}", cohort=late, action_type="cancellation.handle",
                    delay_hours=1.5 * i, segment=3, urgent=True, template="t-2") for i in range(7, 14)]
    recs += [action(14, subject="cust-late", cohort={"segment": "enterprise", "tier": "gold"}),
             action(15, subject="cust-bare", cohort={"segment": "smb", "age_band": "35-49"}),
             action(16, mission="m-unregistered", subject="u-1", cohort={"plan": "basic"}, seats=4),
             action(3, subject="cust-3", cohort=early, discount_pct=15, template="renewal-v1"),  # duplicate
             outcome("o-own", "cust-0", 410, {"age_band": "18-34", "channel": "phone"}),  # duplicate
             {"schema": "missionwatch/batch@1", "batch_id": "b-1",
              "items": [action(17, subject="cust-9", cohort=late), 7, action(18, subject="cust-9")]},
             {"schema": "missionwatch/review@1", "review_id": "rv-1", "mission_id": "m-1",
              "reviewer": "user:lee", "decision": "acknowledge", "occurred_at": stamp(2000)}]
    return [r if isinstance(r, str) else line(r) for r in recs]


def dump(db: Path) -> dict[str, Any]:
    """Every table and view: its columns with their types, and its rows in stored order."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY table_name").fetchall()]
        return {t: (con.execute(f'DESCRIBE "{t}"').fetchall(), con.execute(f'SELECT * FROM "{t}"').fetchall())
                for t in names}
    finally:
        con.close()


def replay(tmp_path: Path, registry: SpecRegistry, signer: Signer, name: str, batch_rows: int) -> Path:
    (tmp_path / "input.jsonl").write_text("\n".join(late_attributes()) + "\n")
    monitor = Monitor(registry, signer=signer, allow_unsigned=True)
    replay_file(tmp_path / "input.jsonl", tmp_path / name, monitor, workers=0, batch_rows=batch_rows)
    return tmp_path / name / "ledger.duckdb"


@pytest.fixture(scope="module")
def ledgers(tmp_path_factory: pytest.TempPathFactory, registry: SpecRegistry,
            keys: dict[str, Signer]) -> dict[int, dict[str, Any]]:
    """The campaign's ledger written in batches of 3 rows, and in one batch."""
    tmp = tmp_path_factory.mktemp("ledgers")
    return {n: dump(replay(tmp, registry, keys["monitor"], f"b{n}", n)) for n in (3, 1_000_000)}


def columns(ledger: dict[str, Any], table: str) -> list[tuple[str, str]]:
    return [(c[0], c[1]) for c in ledger[table][0]]


def rows(ledger: dict[str, Any], table: str) -> list[dict[str, Any]]:
    names = [c[0] for c in ledger[table][0]]
    return [dict(zip(names, r, strict=True)) for r in ledger[table][1]]


def test_batches_change_nothing(ledgers: dict[int, dict[str, Any]]) -> None:
    small, whole = ledgers[3], ledgers[1_000_000]
    assert list(small) == list(whole)
    for table in whole:
        assert small[table] == whole[table], table


def test_attribute_columns_are_named_and_ordered_over_the_whole_input(ledgers: dict[int, dict[str, Any]]) -> None:
    ledger = ledgers[3]
    fixed = [("receipt_id", "VARCHAR"), ("mission_id", "VARCHAR"), ("agent_id", "VARCHAR"),
             ("action_type", "VARCHAR"), ("decision", "VARCHAR"), ("subject_id", "VARCHAR"),
             ("occurred_at", "TIMESTAMP WITH TIME ZONE"), ("template", "VARCHAR"), ("policy_version", "VARCHAR")]
    trailer = [("record_hash", "VARCHAR"), ("batch_hash", "VARCHAR"), ("key_id", "VARCHAR"), ("line", "BIGINT"),
               ("partition", "BIGINT")]
    cohort = [(c, "VARCHAR") for c in ("segment", "age_band", "region", "cohort_Segment", "cohort_line", "tier",
                                       "plan")]
    numeric = [(c, "DOUBLE") for c in ("discount_pct", "delay_hours", "attr_segment", "seats")]
    assert columns(ledger, "actions") == fixed + cohort + numeric + [("attributes", "JSON")] + trailer
    assert columns(ledger, "outcomes") == [
        ("outcome_id", "VARCHAR"), ("mission_id", "VARCHAR"), ("subject_id", "VARCHAR"),
        ("outcome_type", "VARCHAR"), ("value", "DOUBLE"), ("occurred_at", "TIMESTAMP WITH TIME ZONE"),
        ("follows", "VARCHAR"), ("attributed", "BOOLEAN"), *cohort, ("channel", "VARCHAR"), *trailer]


def test_the_ledger_holds_every_kind_of_line(ledgers: dict[int, dict[str, Any]]) -> None:
    ledger = ledgers[3]
    actions = rows(ledger, "actions")
    assert [a["line"] for a in actions] == sorted(a["line"] for a in actions)  # input order
    assert len(actions) == 19 and actions[0]["region"] is None and actions[7]["region"] == "north"
    assert actions[7]["cohort_Segment"] == "x" and actions[7]["attr_segment"] == 3.0
    assert {a["batch_hash"] is not None for a in actions} == {False, True}
    missions = {m["mission_id"]: m for m in rows(ledger, "missions")}
    assert missions["m-empty"]["actions"] == 0 and missions["m-empty"]["registered"]
    assert not missions["m-unregistered"]["registered"]
    outcomes = {o["outcome_id"]: o for o in rows(ledger, "outcomes")}
    assert (outcomes["o-early"]["attributed"], outcomes["o-early"]["tier"]) == (True, "gold")
    assert (outcomes["o-bare"]["attributed"], outcomes["o-bare"]["age_band"]) == (True, "35-49")
    assert (outcomes["o-own"]["channel"], outcomes["o-own"]["segment"]) == ("phone", None)
    assert not outcomes["o-never"]["attributed"] and outcomes["o-never"]["segment"] is None
    assert [(r["line"], r["item"], r["code"]) for r in rows(ledger, "rejected")] == [
        (14, None, "malformed_json"), (15, None, "invalid_field"), (29, 1, "not_an_object")]
    assert [(d["kind"], d["id"]) for d in rows(ledger, "duplicates")] == [("action", "r-m-1-3"),
                                                                          ("outcome", "o-own")]
    assert len(rows(ledger, "reviews")) == 1 and rows(ledger, "strategy_receipts")


class Watch:
    """A sink beside the writer: after every row, the writer holds no more than its batch."""

    def __init__(self, writer: LedgerWriter) -> None:
        self.writer, self.calls = writer, 0

    def check(self) -> None:
        self.calls += 1
        assert self.writer.buffered <= self.writer.batch_rows
        assert self.writer.buffered_bytes < self.writer.batch_bytes

    def add_accepted(self, line: int, a: object) -> None:
        self.check()

    def add_event(self, e: dict[str, Any]) -> None:
        self.check()

    def add_rejected(self, row: dict[str, Any]) -> None:
        self.check()

    def add_sealed(self, mission_id: str, key: object, cell: object) -> None:
        self.check()


@pytest.mark.parametrize(("batch_rows", "batch_bytes"), [(4, 10**9), (10**9, 2_000)])
def test_the_writer_holds_at_most_its_batch(tmp_path: Path, registry: SpecRegistry, batch_rows: int,
                                           batch_bytes: int) -> None:
    monitor = Monitor(registry, signer=Signer.generate("monitor-1"), allow_unsigned=True)
    lines = [line(action(i, subject=f"cust-{i % 30}", cohort={"segment": "smb", f"k{i // 40}": "v"},
                         discount_pct=i)) for i in range(200)]
    with LedgerWriter(tmp_path / "ledger.duckdb", monitor, batch_rows=batch_rows,
                      batch_bytes=batch_bytes) as writer:
        watch = Watch(writer)
        result = replay_lines(monitor, lines, sinks=[writer, watch], keep=False)
        assert watch.calls >= 200 and writer.parts >= 10
        assert writer.peak_buffered <= min(batch_rows, 20)  # 2,000 characters: about 15 rows
    assert (result.n_accepted, result.n_rejected, result.n_events) == (200, 0, watch.calls - 200)
    with pytest.raises(RuntimeError, match="keep=True"):
        result.events  # noqa: B018 - kept nothing
    con = duckdb.connect(str(tmp_path / "ledger.duckdb"), read_only=True)
    assert con.execute("SELECT count(*), count(k4) FROM actions").fetchone() == (200, 40)
    assert list(tmp_path.iterdir()) == [tmp_path / "ledger.duckdb"]  # the staging is gone


def test_a_failed_replay_leaves_nothing(tmp_path: Path, registry: SpecRegistry) -> None:
    class Boom(Exception):
        pass

    def lines() -> Any:
        yield line(action(1))
        raise Boom

    out = tmp_path / "out"
    (tmp_path / "input.jsonl").write_text("")
    monitor = Monitor(registry, signer=Signer.generate("monitor-1"), allow_unsigned=True)
    replay_file(tmp_path / "input.jsonl", out, monitor, workers=0)  # an empty input is fine
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "ledger.duckdb", "rejected.jsonl"]
    with pytest.raises(Boom), LedgerWriter(out / "again.duckdb", monitor, batch_rows=1) as writer:
        replay_lines(monitor, lines(), sinks=[writer])
    assert sorted(p.name for p in out.iterdir()) == ["events.jsonl", "ledger.duckdb", "rejected.jsonl"]
    assert dump(out / "ledger.duckdb")["missions"][1] == []  # an empty input: empty tables


def test_a_table_too_big_for_the_memory_limit_gets_more(tmp_path: Path, registry: SpecRegistry,
                                                        keys: dict[str, Signer]) -> None:
    monitor = Monitor(registry, signer=keys["monitor"], allow_unsigned=True)
    result = replay_lines(monitor, late_attributes())

    def write(name: str, limits: tuple[str | None, ...]) -> Path:
        write_ledger(tmp_path / name, monitor, result.accepted, result.events, result.rejected, result.sealed,
                     memory_limits=limits)
        return tmp_path / name

    with pytest.raises(duckdb.OutOfMemoryException):
        write("tight.duckdb", ("1MB",))
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left of it
    assert dump(write("retried.duckdb", ("1MB", None))) == dump(write("default.duckdb", (None,)))


def test_a_misspelt_memory_limit_is_refused_at_once(tmp_path: Path, registry: SpecRegistry) -> None:
    monitor = Monitor(registry, signer=Signer.generate("monitor-1"), allow_unsigned=True)
    for limit in ("48 megs", "MB", "-"):
        with pytest.raises(ValueError, match="not a memory limit"):
            LedgerWriter(tmp_path / "ledger.duckdb", monitor, memory_limits=(limit, None))
    assert list(tmp_path.iterdir()) == []
    LedgerWriter(tmp_path / "ledger.duckdb", monitor, memory_limits=("48MB", "1.5GiB", "512 KB", None)).discard()


def big_receipts(n: int, size: int) -> Iterator[dict[str, Any]]:
    """`n` strategy receipts of about `size` characters each (text that compresses badly)."""
    for i in range(n):
        yield {"schema": SCHEMA_STRATEGY, "receipt_id": f"sr-{i}", "mission_id": "m-1", "seq": i,
               "issued_at": stamp(i), "review_status": "none", "state": "running", "current_tactic_cluster": "c-1",
               "cohorts_affected": [], "window": {"actions": i}, "hash": f"sha256:{i}", "prev_hash": None,
               "notes": "".join(hashlib.sha256(f"{i}:{j}".encode()).hexdigest() for j in range(size // 64))}


def test_a_commit_has_the_memory_a_checkpoint_needs(tmp_path: Path, registry: SpecRegistry) -> None:
    """20 MB of strategy receipts go to DuckDB's write-ahead log; the next commit checkpoints
    them. Under the 8MB the next table was built in, that checkpoint failed, and a failed
    checkpoint is no OutOfMemoryException to retry: it invalidated the database
    (FatalException). A commit runs under at least COMMIT_MEMORY_LIMIT, whatever the ladder."""
    monitor = Monitor(registry, signer=Signer.generate("monitor-1"), allow_unsigned=True)

    def write(name: str, limits: tuple[str | None, ...]) -> Path:
        write_ledger(tmp_path / name, monitor, [], big_receipts(1_000, 20_000), [], [], memory_limits=limits)
        return tmp_path / name

    tight = dump(write("tight.duckdb", ("8MB", None)))
    assert len(tight["strategy_receipts"][1]) == 1_000
    assert tight == dump(write("default.duckdb", (None,)))


LEDGER_MEASURES = ("actions", "subjects", "outcome:renewal", "outcome:complaint", "outcome:churn",
                   "attr:offer.discount:discount_pct:n", "attr:offer.discount:discount_pct:sum",
                   "attr:offer.discount:discount_pct:sumsq")
LEDGER_CELLS = (("*", "*"), *(("age_band", v) for v in ("18-34", "35-49", "50-64", "65+")),
                *(("region", v) for v in ("north", "south", "east", "west")))


def build_growth(path: Path, rows: int) -> int:
    """In a child process: stage a ledger table of about `rows` rows (sealed cells of hourly
    buckets, nine cohorts of a mission, eight measures each) and write the database; the peak
    RSS while building it above the RSS before, in KiB."""
    monitor = Monitor(SpecRegistry.load_dir(SPECS), signer=Signer.generate("monitor-1"), allow_unsigned=True)
    with LedgerWriter(path, monitor) as writer:
        for i in range(rows // (len(LEDGER_MEASURES) * len(LEDGER_CELLS)) + 1):
            for dimension, cohort in LEDGER_CELLS:
                writer.add_sealed("m-1", (1.7e9 + 3600 * i, dimension, cohort),
                                  {m: float(i % 97 + k) for k, m in enumerate(LEDGER_MEASURES)})
        before = next(int(x.split()[1]) for x in Path("/proc/self/status").read_text().splitlines()
                      if x.startswith("VmRSS:"))
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before


@pytest.mark.slow
def test_the_build_takes_no_more_memory_for_a_ten_times_bigger_ledger(tmp_path: Path) -> None:
    """The ledger table's GROUP BY and ORDER BY take what DuckDB allows them: on two threads
    under 128MB, building 600,000 rows took 80 to 98 MiB more than 60,000 (issue 10's ratio of
    200,000 receipts to 20,000 rose to 1.64x); on one thread under 48MB, 39 MiB more."""
    if not Path("/proc/self/status").exists():
        pytest.skip("reads VmRSS from /proc")
    ctx = multiprocessing.get_context("spawn")  # a fresh process for each: peak RSS is per process
    with ctx.Pool(1, maxtasksperchild=1) as pool:
        small = pool.apply(build_growth, (tmp_path / "small.duckdb", 60_000))
        big = pool.apply(build_growth, (tmp_path / "big.duckdb", 600_000))
    with duckdb.connect(str(tmp_path / "big.duckdb"), read_only=True) as con:
        per_bucket = len(LEDGER_MEASURES) * len(LEDGER_CELLS)
        assert con.execute("SELECT count(*) FROM ledger").fetchone() == ((600_000 // per_bucket + 1) * per_bucket,)
    assert (big - small) / 1024 <= 60, f"the build grew by {(big - small) / 1024:.0f} MiB"
