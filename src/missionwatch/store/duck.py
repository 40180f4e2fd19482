"""The analysts' DuckDB ledger (schema documented in README.md, "The ledger").

Tables: missions, actions, outcomes, reviews, strategy_receipts, escalations,
controls, ledger (exact counts per mission x bucket x cohort x measure),
duplicates, rejected. Timestamps are TIMESTAMPTZ in UTC.

Written in bounded memory. `LedgerWriter` takes each row as a replay issues it
(accepted records, out records, rejections) and holds at most `batch_rows` of
them and about `batch_bytes` of their text (a strategy receipt's record runs to
tens of kB): a full buffer goes to disk as one Parquet part per table, in a
staging directory beside the database. `close()` adds what only the end knows
(the `missions` and `ledger` tables, from the monitor) the same way, then builds
the database in one go, each table one `CREATE TABLE ... AS SELECT` over its
parts, on one thread under a memory limit (`MEMORY_LIMITS`): DuckDB streams the
rows from Parquet into its own storage, Python never holds a table. The file is built
inside the staging directory and moved into place when whole, so a failed replay
leaves no half-written ledger (as before, when it was written at the end from
memory).

Why staged parts rather than appends to the final tables: `actions` has one
column per cohort attribute and per numeric attribute, `outcomes` one per cohort
attribute, named after the attributes, ordered by first appearance over the
whole input, and prefixed `cohort_`/`attr_` where a name would clash (DuckDB
names are case-insensitive, so a clash can come from any later attribute). None
of that is known until the end. A part carries the attribute columns its rows
have (a table's last part: all of them), under staging names (`c0`, `n0`, `o0`:
distinct however the attributes are spelled); `read_parquet(..., union_by_name
= true)` reads a column a part lacks as NULL, and the final SELECT gives each
column its name and place. ALTER TABLE ADD COLUMN as attributes appear would also hold the rows
on disk, but the names and the order would still need a rewrite at the end.

Row order: rows keep the order they were issued in, table by table, as before:
parts are numbered in that order and a scan of one `read_parquet` keeps
insertion order (DuckDB's order preservation, set explicitly below).

Outcomes: a row carries the outcome's own cohort, else its subject's as first
seen in the mission, which may come later in the input. A subject's cohort never
changes once known (CONTRACT 1.3), so a row whose cohort is known when it is
accepted is final; the others are staged unattributed and settled at `close()`
from the monitor, rewriting the parts that hold one, a part at a time.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import polars as pl

from ..ledger import Cell, Key
from ..monitor import Accepted, Monitor
from .rows import (
    LEDGER_TOTALS,
    TABLE_DEFS,
    Attribute,
    RowMaker,
    Schema,
    Table,
    comment,
    frame,
    mission_row,
    part_schema,
    select_list,
)

__all__ = ["BUILD_THREADS", "COMMIT_MEMORY_LIMIT", "DEFAULT_BATCH_BYTES", "DEFAULT_BATCH_ROWS", "MEMORY_LIMITS",
           "LedgerWriter", "write_ledger"]

DEFAULT_BATCH_ROWS = 10_000
"""Rows a `LedgerWriter` holds before it writes them out (all tables together)."""
DEFAULT_BATCH_BYTES = 16 * 2**20
"""Text (characters of its string values) a `LedgerWriter` holds before it writes it out."""

MEMORY_LIMITS: tuple[str | None, ...] = ("48MB", "128MB", "1GB", None)
"""DuckDB's memory limits while it builds a table, tried in turn until one is enough. The
build runs on one thread (`BUILD_THREADS`): each thread has its own buffers and hash tables,
and the limit bounds their sum. What a table takes grows with it up to the limit: the
`ledger` table's GROUP BY and ORDER BY over its cells, the `actions` table. Measured
(benchmarks/memory.py inputs; peak RSS of a build from the staged parts above the process
before it): one mission of 20,000 receipts, +56 MiB (+66 at 128MB on two threads, the
limits before); 200,000 receipts to 50,000 customers (558,651 ledger rows), +89 MiB against
+164, which took issue 10's ratio of the two replays' peak RSS from 1.64x to 1.31x; 5,000
missions of 40 receipts, +225 MiB as before: their 8,700 strategy receipts of 13.6 kB (the
JSON cast holds 2,048 at a time) fit at 48MB, not at 40MB, and their 1.3 million ledger rows
at 48MB on one thread, not on two; so do 30,000 actions of a hundred cohort attributes. A
table that needs more (hundreds of attribute columns) gets it."""
COMMIT_MEMORY_LIMIT = "128MB"
"""The least memory limit a table's commit runs under. DuckDB may checkpoint on a commit (every
table written since the last checkpoint, not only the one committed: a table that went to the
write-ahead log is checkpointed by the next commit), and a checkpoint out of memory is no
OutOfMemoryException to retry: it invalidates the database (FatalException). So the build's
commits keep the memory the whole build had before its first limit was lowered."""
BUILD_THREADS = 1
"""DuckDB's threads while it builds the database (its default: one per core)."""
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class _Stage:
    """One table's rows on their way to DuckDB: a buffer, written out as numbered Parquet parts."""

    def __init__(self, table: Table, schema: Schema, directory: Path) -> None:
        self.table = table
        self.schema = schema
        """The table's staged columns (the RowMaker's: attribute columns join as they appear)."""
        self.directory = directory
        self.rows: list[dict[str, Any]] = []
        self.parts: list[Path] = []

    def flush(self, *, every_column: bool = False) -> None:
        """Write the buffer as the next part: the fixed columns and the attribute columns its
        rows have (`every_column`: all those known)."""
        part = self.directory / f"{self.table.name}.{len(self.parts):06d}.parquet"
        schema = self.schema if every_column else part_schema(self.table, self.schema, self.rows)
        frame(self.rows, schema).write_parquet(part)
        self.parts.append(part)
        self.rows = []


class LedgerWriter:
    """Writes one replay's ledger.duckdb at `path` (replacing any), holding at most `batch_rows`
    rows, and about `batch_bytes` of their text, in memory.

    Give it what the replay issues, in order (`add_accepted`, `add_event`, `add_rejected`);
    then `close()` writes the file. As a context manager it closes on
    success and, on an exception, discards what it staged and writes nothing.
    """

    def __init__(self, path: str | Path, monitor: Monitor, *, batch_rows: int = DEFAULT_BATCH_ROWS,
                 batch_bytes: int = DEFAULT_BATCH_BYTES,
                 memory_limits: Sequence[str | None] = MEMORY_LIMITS) -> None:
        if batch_rows < 1 or batch_bytes < 1:
            raise ValueError(f"batch_rows and batch_bytes must be at least 1, not {batch_rows}, {batch_bytes}")
        for limit in memory_limits:  # a misspelt one would fail only once the whole input is in
            if limit is not None:
                _memory_bytes(limit)
        self.path = Path(path)
        self.monitor = monitor
        self.batch_rows = batch_rows
        self.batch_bytes = batch_bytes
        self.memory_limits = memory_limits
        self.buffered = 0
        """Rows held in memory now: never more than `batch_rows`."""
        self.buffered_bytes = 0
        """Characters of text those rows hold: always less than `batch_bytes` between calls."""
        self.peak_buffered = 0
        self._dir = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=self.path.parent))
        self._rows = RowMaker(monitor)
        self._stages = {t.name: _Stage(t, self._rows.schemas[t.name], self._dir) for t in TABLE_DEFS}
        self._unattributed: list[int] = []  # outcome parts holding an unattributed row
        self._unattributed_buffered = False

    @property
    def parts(self) -> int:
        """Parquet parts written so far."""
        return sum(len(s.parts) for s in self._stages.values())

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()

    # ------------------------------------------------------------------ rows in
    def add_accepted(self, line: int, a: Accepted) -> None:
        """A record the monitor accepted (a duplicate too), `line` its input line."""
        made = self._rows.accepted(a, line)
        if made is not None:
            if made[0] == "outcomes" and not made[1]["attributed"]:  # settled at close()
                self._unattributed_buffered = True
            self._add(*made)

    def add_event(self, e: dict[str, Any]) -> None:
        """An out record (strategy receipt, escalation or control signal), as issued."""
        made = self._rows.event(e)
        if made is not None:
            self._add(*made)

    def add_rejected(self, row: dict[str, Any]) -> None:
        """A rejected.jsonl row: `line`, `item`, `code`, `reason`, `record`."""
        self._add("rejected", row)

    def add_sealed(self, mission_id: str, key: Key, cell: Cell) -> None:
        """A ledger cell the monitor sealed: one part of the cell (the table sums its parts)."""
        for row in self._rows.sealed(mission_id, key, cell):
            self._add("ledger", row)

    def _add(self, table: str, row: dict[str, Any]) -> None:
        self._stages[table].rows.append(row)
        self.buffered += 1
        self.buffered_bytes += sum(len(v) for v in row.values() if isinstance(v, str))
        self.peak_buffered = max(self.peak_buffered, self.buffered)
        if self.buffered >= self.batch_rows or self.buffered_bytes >= self.batch_bytes:
            self._flush()

    def _flush(self, *, last: bool = False) -> None:
        """Write each buffer holding rows as its table's next part (`last`: each buffer, with
        every column its table will have)."""
        for stage in self._stages.values():
            if stage.rows or last:
                if stage.table.name == "outcomes" and self._unattributed_buffered:
                    self._unattributed.append(len(stage.parts))
                    self._unattributed_buffered = False
                stage.flush(every_column=last)
        self.buffered = self.buffered_bytes = 0

    # -------------------------------------------------------------------- close
    def close(self) -> None:
        """Add the `missions` and `ledger` tables from the monitor, write the database, drop
        the staging directory."""
        try:
            for mid in self.monitor.mission_ids():
                summary = self.monitor.summary(mid)
                assert summary is not None
                self._add("missions", mission_row(summary))
            for mid in self.monitor.mission_ids():
                for row in self.monitor.iter_ledger_rows(mid):
                    self._add("ledger", row)
            attributes = self._rows.attribute_columns()  # the last part carries every column
            self._flush(last=True)
            self._settle_outcomes()
            built = self._dir / self.path.name
            self._build(built, attributes)
            for p in (self.path, self.path.with_name(self.path.name + ".wal")):
                p.unlink(missing_ok=True)
            os.replace(built, self.path)
        finally:
            self.discard()

    def discard(self) -> None:
        """Drop everything staged (close() calls it; call it to give up)."""
        shutil.rmtree(self._dir, ignore_errors=True)
        for stage in self._stages.values():
            stage.rows = []
        self.buffered = self.buffered_bytes = 0

    def _settle_outcomes(self) -> None:
        """Attribute the outcomes whose subject had no known cohort when they were accepted,
        now that the whole input is in."""
        stage = self._stages["outcomes"]
        for n in self._unattributed:
            rows = pl.read_parquet(stage.parts[n]).to_dicts()
            for row in rows:
                if not row["attributed"]:
                    self._rows.attribute_outcome(row, self.monitor.subject_cohort(row["mission_id"],
                                                                                  row["subject_id"]))
            frame(rows, part_schema(stage.table, stage.schema, rows)).write_parquet(stage.parts[n])

    def _build(self, target: Path, attributes: dict[str, list[Attribute]]) -> None:
        con = duckdb.connect(str(target))
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET preserve_insertion_order = true")
            con.execute("SET threads = $n", {"n": BUILD_THREADS})
            for table in TABLE_DEFS:
                _run(con, self.memory_limits, f"CREATE TABLE {table.name} AS SELECT "
                     f"{select_list(table, attributes.get(table.name, []))} FROM {table.source()}",
                     {"parts": [str(p) for p in self._stages[table.name].parts]})
            con.execute(LEDGER_TOTALS.format(kind="VIEW"))
            # DuckDB checkpoints on close too, but says nothing when that fails (out of memory):
            # the tables would stay in the write-ahead log, which is not moved into place. A
            # failed checkpoint invalidates the database, so it gets DuckDB's default limit.
            con.execute("RESET memory_limit")
            comment(con, attributes)
            con.execute("CHECKPOINT")
        finally:
            con.close()
        if target.with_name(target.name + ".wal").exists():
            raise RuntimeError(f"DuckDB left {target.name}.wal behind: the ledger would be incomplete")


def _run(con: duckdb.DuckDBPyConnection, limits: Sequence[str | None], sql: str,
         params: dict[str, Any] | None = None) -> None:
    """Run one statement under the first memory limit it fits in (a failed attempt changes
    nothing); the last one's failure stands. It commits under at least `COMMIT_MEMORY_LIMIT`."""
    for i, limit in enumerate(limits):
        _memory_limit(con, limit)
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(sql, params)
        except duckdb.OutOfMemoryException:
            con.execute("ROLLBACK")
            if i == len(limits) - 1:
                raise
            continue
        _memory_limit(con, _at_least(limit, COMMIT_MEMORY_LIMIT))
        con.execute("COMMIT")
        return


def _memory_limit(con: duckdb.DuckDBPyConnection, limit: str | None) -> None:
    con.execute("SET memory_limit = $limit" if limit else "RESET memory_limit", {"limit": limit} if limit else None)


def _memory_bytes(limit: str) -> float:
    """A memory limit as DuckDB reads it (`128MB`, `1.5GiB`: KB and the like in 1000s, KiB in
    1024s), in bytes."""
    number = limit.strip().rstrip("BbIiKkMmGgTt ")
    unit = limit.strip()[len(number):].strip().lower()
    if unit not in _UNITS:
        raise ValueError(f"not a memory limit: {limit!r}")
    try:
        return float(number) * _UNITS[unit]
    except ValueError:
        raise ValueError(f"not a memory limit: {limit!r}") from None


def _at_least(limit: str | None, floor: str) -> str | None:
    """The larger of two memory limits (None: DuckDB's default, larger than any)."""
    return None if limit is None else max(limit, floor, key=_memory_bytes)


def write_ledger(path: str | Path, monitor: Monitor, accepted: Iterable[tuple[int, Accepted]],
                 events: Iterable[dict[str, Any]], rejected: Iterable[dict[str, Any]],
                 sealed: Iterable[tuple[str, Key, Cell]], *,
                 batch_rows: int = DEFAULT_BATCH_ROWS, batch_bytes: int = DEFAULT_BATCH_BYTES,
                 memory_limits: Sequence[str | None] = MEMORY_LIMITS) -> None:
    """Write a fresh DuckDB file at `path` (replacing any) from one replay's results, all at once
    (`LedgerWriter` takes them as they come).

    `accepted` pairs each accepted record with its input line number; `sealed` holds the ledger
    cells the monitor sealed (`ReplayResult.sealed`): without them the ledger would lack every
    bucket older than the spec's `open`.
    """
    with LedgerWriter(path, monitor, batch_rows=batch_rows, batch_bytes=batch_bytes,
                      memory_limits=memory_limits) as writer:
        for mission_id, key, cell in sealed:
            writer.add_sealed(mission_id, key, cell)
        for line, a in accepted:
            writer.add_accepted(line, a)
        for e in events:
            writer.add_event(e)
        for r in rejected:
            writer.add_rejected(r)
