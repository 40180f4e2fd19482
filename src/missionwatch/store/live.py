"""The running service's analysts' ledger: the tables of a replay's ledger.duckdb (one schema,
store/rows.py), kept while the monitor streams, in `DATA/ledger/`.

Layout (each partition of missionwatch.in is written by the one worker that holds it):

    ledger/<table>/pPPPP-FIRST-LAST.parquet   rows caused by the messages at offsets FIRST..LAST
    ledger/missions/pPPPP-LAST.parquet        snapshot: the partition's missions as of LAST
    ledger/missions/pPPPP-LAST.KKKK.parquet   ... its further pieces (`SNAPSHOT_CHUNK` missions each)
    ledger/ledger_open/pPPPP-LAST.parquet     snapshot: its open ledger cells as of LAST
    ledger/ledger_open/pPPPP-LAST.KKKK.parquet  ... and theirs
    ledger/commits/pPPPP.json                 the commit: LAST, the attributes and columns seen
    ledger/locks/pPPPP.lock                   held (flock) by the worker writing the partition

Why this design:
- Nothing is ever rewritten in place. A part or a snapshot is written under a temporary name
  and renamed when whole, then the commit is replaced (also by rename). A reader reads the
  commits first and takes only what they cover: the parts whose LAST is at most the commit's,
  the snapshots it names. So a reader never sees half a write, nor rows the commit does not
  cover, and what it sees never goes back (the next commit covers more). DuckDB opens Parquet
  files read-only; the worker holds no database open, so readers lock nobody out.
- Idempotent under the at-least-once redelivery the service has: rows are made by the
  message that caused them, and a message at or before the partition's committed offset makes
  none (a restart after kill -9 feeds the whole log again to rebuild the state). Parts past the
  commit (a crash between a part and its commit) are deleted when the partition is opened, and
  made again.
- A ledger cell is sealed (final parts, as in a replay) or open (in the monitor's memory): the
  open ones are written whole with each commit as a snapshot, the `ledger` table sums the
  sealed parts the commit covers and the commit's snapshot. A snapshot is kept for the next
  `KEEP_SNAPSHOTS` commits, so a reader that has read a commit finds its snapshot.
- Writes happen off the stream's hot path: the agent only appends rows to lists; `job()` hands
  what was gathered since the last commit to a writer thread (`write`), which the service runs
  every `ledger_every` seconds. A write that fails (a full disk) is kept and tried again first.
- The live ledger attributes an outcome as its subject was known when it was accepted (a
  replay settles the rest at the end of its input).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import pickle
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import polars as pl

from ..core.step import Step
from ..monitor import Monitor
from .columns import TABLES
from .rows import (
    LEDGER_TOTALS,
    TABLE_DEFS,
    Attribute,
    RowMaker,
    Table,
    attribute_columns,
    comment,
    frame,
    mission_row,
    part_schema,
    quote,
    select_list,
    sql_literal,
)

__all__ = ["COMMIT_VERSION", "KEEP_SNAPSHOTS", "Commit", "Job", "Ledgers", "LiveLedger", "attach", "read_commits"]

log = logging.getLogger("missionwatch.stream")

COMMIT_VERSION = 2
"""Version 2 added `snapshot_parts`; a version 1 commit (one file a snapshot) still reads."""
KEEP_SNAPSHOTS = 3
"""Snapshots kept per partition: the latest commit's and those of the two before it."""
PART = re.compile(r"^p(\d{4,})-(\d{12,})-(\d{12,})\.parquet$")
SNAPSHOT = re.compile(r"^p(\d{4,})-(\d{12,})\.parquet$")
SNAPSHOT_PIECE = re.compile(r"^p(\d{4,})-(\d{12,})(?:\.\d{4,})?\.parquet$")
"""A snapshot's file: its first piece (named as the snapshot) or a further one."""
STREAMED = tuple(t.name for t in TABLE_DEFS if t.name != "missions")
"""The tables made of parts (the `ledger` table's parts are its sealed cells)."""
SNAPSHOTS = ("missions", "ledger_open")
_LEDGER = next(t for t in TABLE_DEFS if t.name == "ledger")
STAGED = re.compile(r"^[cno]\d+$")
"""A staged attribute column's name (store/rows.py)."""


@dataclass(frozen=True)
class Commit:
    """What a partition's ledger holds: every row caused by its messages up to `offset`."""

    partition: int
    offset: int
    attributes: dict[str, list[str]]
    """The attributes seen, each kind in order (`RowMaker.attributes`)."""
    columns: dict[str, list[str]]
    """Per table, the staged attribute columns some part of it has."""
    snapshot: str | None
    """The file name of the snapshots (`missions/`, `ledger_open/`) as of `offset`."""
    snapshot_parts: int = 1
    """The files each snapshot is in: `snapshot`, then `snapshot_files` names the others."""

    def snapshot_files(self) -> list[str]:
        """The file names of each snapshot of this commit, in order."""
        return [] if self.snapshot is None else [piece(self.snapshot, k) for k in range(self.snapshot_parts)]

    def to_json(self) -> dict[str, Any]:
        return {"version": COMMIT_VERSION, "partition": self.partition, "offset": self.offset,
                "attributes": self.attributes, "columns": self.columns, "snapshot": self.snapshot,
                "snapshot_parts": self.snapshot_parts}

    @classmethod
    def from_json(cls, data: Any, partition: int) -> Commit:
        """A commit file's contents; ValueError naming what is wrong with it."""
        if not isinstance(data, dict) or data.get("version") not in (1, COMMIT_VERSION):
            raise ValueError(f"not a version 1 or {COMMIT_VERSION} commit")
        if data.get("partition") != partition or not isinstance(data.get("offset"), int):
            raise ValueError("its partition or offset is wrong")
        attrs, cols, snap = data.get("attributes"), data.get("columns"), data.get("snapshot")
        if not (isinstance(attrs, dict) and all(isinstance(v, list) for v in attrs.values())
                and isinstance(cols, dict) and all(isinstance(v, list) for v in cols.values())
                and (snap is None or (isinstance(snap, str) and SNAPSHOT.match(snap)))):
            raise ValueError("its attributes, columns or snapshot are malformed")
        parts = data.get("snapshot_parts", 1)
        if type(parts) is not int or not 1 <= parts <= 10**6:
            raise ValueError(f"its snapshot_parts is not a count of files: {parts!r}")
        return cls(partition, data["offset"], attrs, cols, snap, parts)


def piece(snapshot: str, k: int) -> str:
    """The file name of piece `k` (from 0) of a snapshot named `snapshot`."""
    return snapshot if k == 0 else f"{snapshot.removesuffix('.parquet')}.{k:04d}.parquet"


def commit_path(root: Path, partition: int) -> Path:
    return root / "commits" / f"p{partition:04d}.json"


def load_commit(root: Path, partition: int) -> Commit | None:
    """A partition's commit, None when it has none; OSError or ValueError naming what is wrong
    with a commit that cannot be used."""
    path = commit_path(root, partition)
    if not path.exists():
        return None
    return Commit.from_json(json.loads(path.read_bytes()), partition)


def read_commits(root: Path) -> dict[int, Commit]:
    """The commit of each partition of a live ledger (`DATA/ledger`); a malformed one is
    left out (its worker rebuilds it), with a warning."""
    out = {}
    for path in sorted((root / "commits").glob("p*.json")):
        try:
            commit = load_commit(root, int(path.stem[1:]))
        except (OSError, ValueError) as exc:
            log.warning("%s: left out (%s)", path, exc)
            continue
        if commit is not None:
            out[commit.partition] = commit
    return out


def _replace(path: Path, data: bytes | None = None, write: Any = None) -> None:
    """Write a file whole under a temporary name, then rename it into place."""
    tmp = path.with_name(f".tmp-{path.name}")
    if data is not None:
        tmp.write_bytes(data)
    else:
        write(tmp)
    os.replace(tmp, path)


class Segment(NamedTuple):
    """Rows caused by the messages at offsets first..last, by table, pickled (`SEGMENT_ROWS` rows
    as dicts are ~10-15 MB; pickled ~4x less)."""

    first: int
    last: int
    rows: bytes


SEGMENT_ROWS = 20_000
"""Rows gathered before they are put aside in a `Segment` of their own (written as parts of
their own): ending missions seal ledger cells by the thousand, and a commit's rows as dicts all
at once could take hundreds of MiB."""


@dataclass
class Job:
    """One commit's writes: the rows caused by the messages up to last since the previous commit,
    and the snapshots as of last."""

    partition: int
    last: int
    segments: list[Segment]
    """The rows, in the offset ranges they were gathered in (each its parts)."""
    schemas: dict[str, Any]
    fresh: dict[str, bytes]
    """The missions changed since the last job: each one's row and open ledger cells as of `last`,
    packed (`_pack`)."""
    attributes: dict[str, list[str]]
    columns: dict[str, list[str]] = field(default_factory=dict)


SNAPSHOT_CHUNK = 200
"""Missions unpacked at a time when a commit writes the snapshots of them all."""


def _pack(made: tuple[dict[str, Any], list[dict[str, Any]]]) -> bytes:
    return zlib.compress(pickle.dumps(made, protocol=pickle.HIGHEST_PROTOCOL), 1)


def _unpack(data: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    made: tuple[dict[str, Any], list[dict[str, Any]]] = pickle.loads(zlib.decompress(data))
    return made


class LiveLedger:
    """One partition's live ledger: rows gathered from the monitor's steps (`take`, `reject`),
    committed by `job()` + `write()`."""

    def __init__(self, root: Path, partition: int, monitor: Monitor) -> None:
        self.root, self.partition, self.monitor = root, partition, monitor
        for d in (*STREAMED, *SNAPSHOTS, "commits", "locks"):
            (root / d).mkdir(parents=True, exist_ok=True)
        self._lock = (root / "locks" / f"p{partition:04d}.lock").open("ab")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock.close()
            raise
        commit = self._recover()
        self.committed = commit.offset if commit else -1
        """The last offset whose rows are on disk (or in a pending job)."""
        self.rows = RowMaker(monitor, attributes=commit.attributes if commit else None)
        self.columns: dict[str, set[str]] = {t: set(c) for t, c in (commit.columns if commit else {}).items()}
        self.buffer: dict[str, list[dict[str, Any]]] = {t: [] for t in STREAMED}
        self.segments: list[Segment] = []
        """Rows put aside since the last job (`SEGMENT_ROWS`), before those in `buffer`."""
        self.first: int | None = None
        """The first offset taken since the last job; `_open` the first since the last segment."""
        self._open: int | None = None
        self.last = self.seen = self.committed
        """The last offset taken into the ledger; the last one fed to the monitor."""
        self.pending: list[Job] = []
        self._snapshot: dict[str, bytes] = {}
        """Per mission, its row and open ledger cells as of the last job written, packed (`_pack`:
        ~1 kB a mission of 12 cohorts, where its dicts are ~25 kB: a worker holds every mission's).
        Touched only by the writer (`_write`)."""
        self._dirty: set[str] = set(monitor.mission_ids())
        self._snapshots: list[Commit] = [commit] if commit and commit.snapshot else []

    def _recover(self) -> Commit | None:
        """The partition's commit; what lies past it (a write cut by a crash) is deleted. A
        malformed commit is dropped with everything of the partition: rebuilt from the log."""
        try:
            commit = load_commit(self.root, self.partition)
        except (OSError, ValueError) as exc:
            path = commit_path(self.root, self.partition)
            log.error("%s: %s; the partition's ledger is rebuilt from the log", path, exc)
            path.unlink()
            commit = None
        offset = commit.offset if commit else -1
        for d in (*STREAMED, *SNAPSHOTS):
            for f in (self.root / d).iterdir():
                m = PART.match(f.name) or SNAPSHOT_PIECE.match(f.name)
                if f.name.startswith(f".tmp-p{self.partition:04d}-") or (
                        m and int(m[1]) == self.partition and int(m[m.re.groups]) > offset):
                    f.unlink()
        return commit

    def close(self) -> None:
        """Write what is gathered, then let another worker have the partition."""
        try:
            self.job()
            self.write()
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            self._lock.close()

    # ------------------------------------------------------------------ rows in
    def take(self, offset: int, step: Step, message: bytes) -> None:
        """What the monitor made of the message at `offset` (nothing when the ledger has it)."""
        self.seen = offset
        self._dirty |= step.missions
        self._dirty.update(c[0] for c in step.cells)
        self._dirty.update(s[0] for s in step.sealed)
        if offset <= self.last:
            return
        self._mark(offset)
        for e in step.out:
            if (made := self.rows.event(e)) is not None:
                self.buffer[made[0]].append(made[1])
        for a in step.accepted:
            if (made := self.rows.accepted(a, offset, self.partition)) is not None:
                self.buffer[made[0]].append(made[1])
        for r in step.rejected:
            self.buffer["rejected"].append(self.rejection(offset, self.monitor.rejection_row(r, message)))
        for mid, key, cell in step.sealed:
            self.buffer["ledger"] += self.rows.sealed(mid, key, cell)
        if sum(map(len, self.buffer.values())) >= SEGMENT_ROWS:
            self._segment(offset)

    def _segment(self, last: int) -> None:
        """Put the rows gathered since the last segment aside, as caused by offsets up to `last`."""
        if self._open is None:
            return
        rows, self.buffer = self.buffer, {t: [] for t in STREAMED}
        for table in ("actions", "outcomes"):
            self.columns.setdefault(table, set()).update(
                c for row in rows[table] for c in row if STAGED.match(c))
        self.segments.append(Segment(self._open, last, pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)))
        self._open = None

    def reject(self, offset: int, row: dict[str, Any]) -> None:
        """A rejection the shell made of the message at `offset` (the monitor failed on it)."""
        if offset > self.committed:
            self._mark(offset)
            self.buffer["rejected"].append(self.rejection(offset, row))

    def rejection(self, offset: int, row: dict[str, Any]) -> dict[str, Any]:
        return {"line": offset, "partition": self.partition, "item": row.get("item"), "code": row.get("code"),
                "reason": row.get("reason"), "record": row.get("record")}

    def _mark(self, offset: int) -> None:
        if self.first is None:
            self.first = offset
        if self._open is None:
            self._open = offset
        self.last = self.seen = max(self.seen, offset)

    # ------------------------------------------------------------------ commits
    def job(self) -> Job | None:
        """What was gathered since the last job, with the snapshots as of now (None: nothing
        new, or the monitor not yet fed up to the commit, during a catch-up). Taken on the event
        loop; written by `write` (any thread)."""
        if (self.first is None and not self._dirty) or self.seen < self.last:
            return None
        self._segment(self.last)
        segments, self.segments = self.segments, []
        fresh = {}
        for mid in self._dirty:  # packed at once: a commit may change thousands of missions
            summary = self.monitor.summary(mid)
            if summary is not None:
                fresh[mid] = _pack((mission_row(summary), list(self.monitor.iter_ledger_rows(mid))))
        self._dirty = set()
        job = Job(self.partition, self.last, segments, {t: dict(s) for t, s in self.rows.schemas.items()},
                  fresh, self.rows.attributes(), {t: sorted(c) for t, c in self.columns.items()})
        self.first = None
        self.committed = self.last
        self.pending.append(job)
        return job

    def _snapshot_pieces(self) -> Iterator[tuple[pl.DataFrame, pl.DataFrame]]:
        """Every mission's row and open cells, `SNAPSHOT_CHUNK` missions a piece (one piece, empty,
        for none): unpacked, framed and written a piece at a time, a commit's memory does not grow
        with the missions (all their rows at once as dicts would be ~25 kB a mission)."""
        packed, chunk = list(self._snapshot.values()), SNAPSHOT_CHUNK
        for at in range(0, max(len(packed), 1), chunk):
            made = [_unpack(b) for b in packed[at:at + chunk]]
            yield (frame([m for m, _ in made], TABLE_DEFS[0].schema),
                   frame([r for _, rows in made for r in rows], _LEDGER.schema))

    def write(self) -> bool:
        """Write the pending jobs in order; False when one failed (it stays pending, and is tried
        again first)."""
        while self.pending:
            try:
                self._write(self.pending[0])
            except Exception as exc:  # a full disk, or a writer's failure: the job waits, nothing is lost
                log.error("the ledger of partition %d could not be written (%s: %s); retrying at the next "
                          "commit", self.partition, type(exc).__name__, exc, exc_info=not isinstance(exc, OSError))
                return False
            self.pending.pop(0)
        return True

    def _write(self, job: Job) -> None:
        p = job.partition
        for seg in job.segments:  # one segment's rows at a time
            for table, rows in pickle.loads(seg.rows).items():
                if rows:
                    t = next(t for t in TABLE_DEFS if t.name == table)
                    path = self.root / table / f"p{p:04d}-{seg.first:012d}-{seg.last:012d}.parquet"
                    _replace(path, write=frame(rows, part_schema(t, job.schemas[table], rows)).write_parquet)
        self._snapshot.update(job.fresh)  # again after a failed write: the same rows
        snap = f"p{p:04d}-{max(job.last, 0):012d}.parquet"
        parts = 0
        for parts, (missions, cells) in enumerate(self._snapshot_pieces(), 1):
            _replace(self.root / "missions" / piece(snap, parts - 1), write=missions.write_parquet)
            _replace(self.root / "ledger_open" / piece(snap, parts - 1), write=cells.write_parquet)
        commit = Commit(p, job.last, job.attributes, job.columns, snap, parts)
        _replace(commit_path(self.root, p), json.dumps(commit.to_json()).encode())
        self._snapshots = [c for c in self._snapshots if c.snapshot != snap] + [commit]
        while len(self._snapshots) > KEEP_SNAPSHOTS:
            stem = (self._snapshots.pop(0).snapshot or "").removesuffix(".parquet")
            for d in SNAPSHOTS:  # every piece, also those of an earlier write under the same name
                for f in (self.root / d).glob(f"{stem}.*"):
                    if SNAPSHOT_PIECE.match(f.name):
                        f.unlink(missing_ok=True)



class Ledgers(dict[int, LiveLedger]):
    """The live ledgers of the partitions a worker holds, kept under `root` (None: none kept)."""

    def __init__(self, root: Path | None) -> None:
        super().__init__()
        self.root = root

    def open(self, partition: int, monitor: Monitor) -> None:
        """Keep the partition's live ledger (from its last commit on disk), unless another worker
        on the same data directory still holds it: then the log says so."""
        if self.root is None or partition in self:
            return
        try:
            self[partition] = LiveLedger(self.root, partition, monitor)
        except OSError as exc:
            log.error("partition %d: its ledger in %s is not kept by this worker (%s: another worker on "
                      "the same --data holds it?)", partition, self.root, exc)

    def committed(self, partition: int) -> int | None:
        """The offset the partition's ledger commit on disk covers (-1: none yet); None when no
        ledger is kept."""
        if self.root is None:
            return None
        try:
            commit = load_commit(self.root, partition)
        except (OSError, ValueError):
            return -1
        return commit.offset if commit is not None else -1

    def close(self, partition: int) -> None:
        """Commit what the partition's live ledger gathered and let it go."""
        led = self.pop(partition, None)
        if led is not None:
            led.close()

    def jobs(self) -> list[LiveLedger]:
        """Take each ledger's next commit; the ledgers with writes to do (`LiveLedger.write`, off
        the event loop, one writer at a time)."""
        for led in self.values():
            led.job()
        return [led for led in self.values() if led.pending]


# ---------------------------------------------------------------------- reading
_DUCK_TYPES = {pl.Utf8: "VARCHAR", pl.Float64: "DOUBLE", pl.Int64: "BIGINT", pl.Boolean: "BOOLEAN"}


def attach(con: duckdb.DuckDBPyConnection, root: Path, tries: int = 3) -> dict[int, int]:
    """Make the ledger's tables views in `con` over a live ledger (`DATA/ledger`), as its
    commits stand now: a consistent snapshot (reopen to see later commits). Returns the offset
    each partition's commit covers."""
    for attempt in range(tries):
        try:
            return _attach(con, root)
        except duckdb.IOException:  # a snapshot dropped by its writer while this read: read again
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")


def _attach(con: duckdb.DuckDBPyConnection, root: Path) -> dict[int, int]:
    commits = read_commits(root)
    for name in (*TABLES, "_missions", "_ledger_open"):
        for kind in ("VIEW", "TABLE"):
            with contextlib.suppress(duckdb.CatalogException):  # it is of the other kind
                con.execute(f"DROP {kind} IF EXISTS {name}")
    snaps = {d: [str(root / d / f) for c in commits.values() for f in c.snapshot_files()] for d in SNAPSHOTS}
    for name, d, table in (("_missions", "missions", TABLE_DEFS[0]), ("_ledger_open", "ledger_open", _LEDGER)):
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM {_files(snaps[d], table.schema)}")
    merged: dict[str, list[str]] = {}
    for c in commits.values():
        for kind, names in c.attributes.items():
            merged.setdefault(kind, [])
            merged[kind] += [n for n in names if n not in merged[kind]]
    named = attribute_columns(merged)
    parts = _parts(root, commits)
    shown: dict[str, list[Attribute]] = {}
    for table in TABLE_DEFS:
        if table.name == "missions":
            source = "_missions"
            shown[table.name] = []
        else:
            source, shown[table.name] = _union(table, commits, parts.get(table.name, {}), named.get(table.name, []))
            if table.name == "ledger":
                source = table.source(f"({source} UNION ALL BY NAME SELECT * FROM _ledger_open)")
        attrs = [Attribute(a.name, a.name, a.attribute) for a in shown[table.name]]
        con.execute(f"CREATE VIEW {table.name} AS SELECT {select_list(table, attrs)} FROM {source}")
    con.execute(LEDGER_TOTALS.format(kind="VIEW"))
    comment(con, shown, views=True)
    return {p: c.offset for p, c in commits.items()}


def _parts(root: Path, commits: dict[int, Commit]) -> dict[str, dict[int, list[str]]]:
    """Per table and partition, the part files its commit covers, in offset order."""
    out: dict[str, dict[int, list[str]]] = {}
    for table in STREAMED:
        found: dict[int, list[tuple[int, str]]] = {}
        directory = root / table
        for f in directory.iterdir() if directory.is_dir() else ():
            m = PART.match(f.name)
            if m and int(m[1]) in commits and int(m[3]) <= commits[int(m[1])].offset:
                found.setdefault(int(m[1]), []).append((int(m[2]), str(f)))
        out[table] = {p: [f for _, f in sorted(fs)] for p, fs in sorted(found.items())}
    return out


def _union(table: Table, commits: dict[int, Commit], files: dict[int, list[str]],
           named: list[Attribute]) -> tuple[str, list[Attribute]]:
    """The table's rows over every partition's parts, attribute columns named; and the attribute
    columns some part has."""
    selects, shown = [], set()
    for p, fs in files.items():
        commit = commits[p]
        present = set(commit.columns.get(table.name, ()))
        here = [(s, a) for a in named if (s := _staged(a, commit)) is not None and s in present]
        cols = [quote(c) for c in table.schema] + [f"{quote(s)} AS {quote(a.name)}" for s, a in here]
        shown |= {a.name for _, a in here}
        selects.append(f"SELECT {', '.join(cols)} FROM read_parquet({_list(fs)}, union_by_name = true)")
    source = " UNION ALL BY NAME ".join(selects) if selects else _files([], table.schema)
    return f"({source})", [a for a in named if a.name in shown]


def _staged(a: Attribute, commit: Commit) -> str | None:
    """The staging column a partition's parts hold an attribute in (store/rows.py)."""
    kind = a.staged[0]
    names = commit.attributes.get(kind, [])
    return f"{kind}{names.index(a.attribute)}" if a.attribute in names else None


def _files(files: list[str], schema: dict[str, Any]) -> str:
    if files:
        return f"read_parquet({_list(files)}, union_by_name = true)"
    cols = ", ".join(f"CAST(NULL AS {_DUCK_TYPES[t]}) AS {quote(c)}" for c, t in schema.items())
    return f"(SELECT {cols} WHERE false)"


def _list(files: list[str]) -> str:
    return "[" + ", ".join(sql_literal(f) for f in files) + "]"
