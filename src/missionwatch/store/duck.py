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
parts, under a memory limit (`MEMORY_LIMITS`): DuckDB streams the rows from
Parquet into its own storage, Python never holds a table. The file is built
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

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import duckdb
import polars as pl

from ..ledger import Cell, Key, cell_rows
from ..monitor import Accepted, MissionView, Monitor
from ..records import (
    SCHEMA_CONTROL,
    SCHEMA_ESCALATION,
    SCHEMA_STRATEGY,
    ActionRecord,
    OutcomeRecord,
    ReviewRecord,
)
from .columns import ATTRIBUTE_COLUMN, COHORT_COLUMN, COLUMNS, TABLES
from .query import sql_literal

__all__ = ["ACTION_COLUMNS", "DEFAULT_BATCH_BYTES", "DEFAULT_BATCH_ROWS", "MEMORY_LIMITS", "LedgerWriter",
           "write_ledger"]

DEFAULT_BATCH_ROWS = 10_000
"""Rows a `LedgerWriter` holds before it writes them out (all tables together)."""
DEFAULT_BATCH_BYTES = 16 * 2**20
"""Text (characters of its string values) a `LedgerWriter` holds before it writes it out."""

MEMORY_LIMITS: tuple[str | None, ...] = ("128MB", "1GB", None)
"""DuckDB's memory limits while it builds a table, tried in turn until one is enough. The
first does for tables of any length with about a hundred attribute columns, and for
strategy receipts of tens of kB (the JSON cast holds 2,048 of them at a time). Measured
(benchmarks/memory.py inputs, peak RSS while building): 200,000 receipts in one mission,
+119 MiB at 128MB against +150 MiB at DuckDB's default (None: 80% of the RAM); 5,000
missions, +210 MiB against +500 MiB. A table of hundreds of attribute columns needs more,
and gets it."""
Schema = dict[str, Any]  # column name -> polars dtype, in table order

ACTION_COLUMNS = ("receipt_id", "mission_id", "agent_id", "action_type", "decision", "subject_id",
                  "occurred_at", "template", "policy_version")
_TRAILER = ("attributes", "record_hash", "batch_hash", "key_id", "line")
OUTCOME_COLUMNS = ("outcome_id", "mission_id", "subject_id", "outcome_type", "value", "occurred_at",
                   "attributed")
_S, _F, _I, _B = pl.Utf8, pl.Float64, pl.Int64, pl.Boolean


@dataclass(frozen=True)
class _Table:
    """A ledger table: its fixed columns before and after the attribute columns (if any),
    its timestamps (epoch seconds, or RFC 3339 text when `iso`) and its JSON columns."""

    name: str
    head: Schema
    tail: Schema = field(default_factory=dict)
    times: tuple[str, ...] = ()
    iso: bool = False
    json: tuple[str, ...] = ()
    summed: str | None = None
    """A column summed over rows equal in every other column (a ledger cell staged in parts),
    the rows then ordered by those columns."""

    def source(self) -> str:
        parts = "read_parquet($parts, union_by_name = true)"
        if self.summed is None:
            return parts
        keys = ", ".join(_quote(c) for c in self.head if c != self.summed)
        return (f"(SELECT {keys}, sum({_quote(self.summed)}) AS {_quote(self.summed)} FROM {parts} "
                f"GROUP BY {keys} ORDER BY {keys})")


_TABLES = (
    _Table("missions", {
        "mission_id": _S, "registered": _B, "spec": _S, "spec_version": _S, "objective": _S,
        "proxy_metric": _S, "constraints": _S, "owner": _S, "human_delegate": _S, "started_at": _F,
        "state": _S, "cause": _S, "review_status": _S, "actions": _I, "outcomes": _I, "subjects": _I,
        "duplicates": _I, "unattributed_outcomes": _I}, times=("started_at",), json=("constraints",)),
    _Table("actions", {c: _F if c == "occurred_at" else _S for c in ACTION_COLUMNS},
           {"attributes": _S, "record_hash": _S, "batch_hash": _S, "key_id": _S, "line": _I},
           times=("occurred_at",), json=("attributes",)),
    _Table("outcomes", {"outcome_id": _S, "mission_id": _S, "subject_id": _S, "outcome_type": _S,
                        "value": _F, "occurred_at": _F, "attributed": _B},
           {"record_hash": _S, "batch_hash": _S, "key_id": _S, "line": _I}, times=("occurred_at",)),
    _Table("reviews", {"review_id": _S, "mission_id": _S, "escalation_id": _S, "reviewer": _S,
                       "decision": _S, "note": _S, "occurred_at": _F, "record_hash": _S, "key_id": _S,
                       "line": _I}, times=("occurred_at",)),
    _Table("strategy_receipts", {
        "receipt_id": _S, "mission_id": _S, "seq": _I, "issued_at": _S, "review_status": _S,
        "state": _S, "current_tactic_cluster": _S, "cohorts_affected": _S, "window_actions": _I,
        "hash": _S, "prev_hash": _S, "record": _S}, times=("issued_at",), iso=True,
        json=("record", "cohorts_affected")),
    _Table("escalations", {**{k: _S for k in (
        "escalation_id", "mission_id", "issued_at", "severity", "detector", "code", "reason",
        "triggered_by", "evidence", "hash", "prev_hash", "record")}, "seq": _I},
        times=("issued_at",), iso=True, json=("evidence", "record")),
    _Table("controls", {**{k: _S for k in ("mission_id", "issued_at", "state", "cause", "hash",
                                            "prev_hash", "record")}, "seq": _I},
           times=("issued_at",), iso=True, json=("record",)),
    _Table("ledger", {"mission_id": _S, "bucket_start": _F, "dimension": _S, "cohort": _S,
                      "measure": _S, "value": _F}, times=("bucket_start",), summed="value"),
    _Table("duplicates", {"kind": _S, "id": _S, "mission_id": _S, "record_hash": _S, "line": _I}),
    _Table("rejected", {"line": _I, "item": _I, "code": _S, "reason": _S, "record": _S}),
)
_OUT_COLUMNS = {
    SCHEMA_STRATEGY: ("strategy_receipts", ("receipt_id", "mission_id", "seq", "issued_at", "review_status",
                                            "state", "current_tactic_cluster", "hash", "prev_hash")),
    SCHEMA_ESCALATION: ("escalations", ("escalation_id", "mission_id", "seq", "issued_at", "severity",
                                        "detector", "code", "reason", "triggered_by", "hash", "prev_hash")),
    SCHEMA_CONTROL: ("controls", ("mission_id", "seq", "issued_at", "state", "cause", "hash", "prev_hash")),
}


def _column_names(fixed: Iterable[str], cohort: Sequence[str], numeric: Sequence[str]) -> dict[str, str]:
    """Column name per cohort attribute (`c:name`) and numeric attribute (`n:name`).

    Named as the attribute; one that would clash with another column (DuckDB names
    are case-insensitive) gets the prefix `cohort_` or `attr_`.
    """
    taken = {c.lower() for c in fixed}
    out = {}
    for prefix, tag, names in (("cohort_", "c", cohort), ("attr_", "n", numeric)):
        for name in names:
            col = name if name.lower() not in taken else prefix + name
            while col.lower() in taken:
                col = "_" + col
            taken.add(col.lower())
            out[f"{tag}:{name}"] = col
    return out


def _frame(rows: list[dict[str, Any]], schema: Schema) -> pl.DataFrame:
    return pl.DataFrame({k: [r.get(k) for r in rows] for k in schema}, schema=schema, strict=False)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class _Stage:
    """One table's rows on their way to DuckDB: a buffer, written out as numbered Parquet parts."""

    def __init__(self, table: _Table, directory: Path) -> None:
        self.table = table
        self.schema: Schema = {**table.head, **table.tail}
        self.directory = directory
        self.rows: list[dict[str, Any]] = []
        self.parts: list[Path] = []

    def flush(self, *, every_column: bool = False) -> None:
        """Write the buffer as the next part: the fixed columns and the attribute columns its
        rows have (`every_column`: all those known)."""
        part = self.directory / f"{self.table.name}.{len(self.parts):06d}.parquet"
        _frame(self.rows, self.schema if every_column else self.columns(self.rows)).write_parquet(part)
        self.parts.append(part)
        self.rows = []

    def columns(self, rows: list[dict[str, Any]]) -> Schema:
        """The fixed columns and the attribute columns `rows` have."""
        fixed = self.table.head.keys() | self.table.tail.keys()
        used = {k for row in rows for k in row}
        return {k: t for k, t in self.schema.items() if k in fixed or k in used}


class _Attributes:
    """Attribute name -> its staging column in `stage` (`c0`, `c1`, ...), in order of first
    appearance."""

    def __init__(self, tag: str, stage: _Stage, dtype: Any) -> None:
        self.tag, self.stage, self.dtype = tag, stage, dtype
        self.columns: dict[str, str] = {}

    def column(self, name: str) -> str:
        col = self.columns.get(name)
        if col is None:
            col = self.columns[name] = f"{self.tag}{len(self.columns)}"
            self.stage.schema[col] = self.dtype
        return col


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
        self._stages = {t.name: _Stage(t, self._dir) for t in _TABLES}
        self._cohort = _Attributes("c", self._stages["actions"], _S)
        self._numeric = _Attributes("n", self._stages["actions"], _F)
        self._outcome_cohort = _Attributes("o", self._stages["outcomes"], _S)
        self._outcome_own: dict[str, None] = {}  # cohort attributes outcomes carry themselves
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
        if a.kind == "outcome" and isinstance(a.model, OutcomeRecord):
            for k in a.model.subject.cohort or {}:
                self._outcome_own.setdefault(k, None)
        if a.duplicate:
            self._add("duplicates", {"kind": a.kind, "id": _record_id(a), "mission_id": a.record.get("mission_id"),
                                     "record_hash": a.hash, "line": line})
        elif a.kind == "action" and isinstance(a.model, ActionRecord):
            self._add("actions", self._action_row(line, a, a.model))
        elif a.kind == "outcome" and isinstance(a.model, OutcomeRecord):
            self._add("outcomes", self._outcome_row(line, a, a.model))
        elif a.kind == "review" and isinstance(a.model, ReviewRecord):
            r = a.model
            self._add("reviews", {"review_id": r.review_id, "mission_id": r.mission_id,
                                  "escalation_id": r.escalation_id, "reviewer": r.reviewer,
                                  "decision": r.decision, "note": r.note, "occurred_at": r.occurred_at,
                                  "record_hash": a.hash, "key_id": a.key_id, "line": line})

    def add_event(self, e: dict[str, Any]) -> None:
        """An out record (strategy receipt, escalation or control signal), as issued."""
        table, cols = _OUT_COLUMNS.get(e["schema"], ("", ()))
        if not table:
            return
        row = {**{c: e.get(c) for c in cols}, "record": json.dumps(e, ensure_ascii=False)}
        if table == "strategy_receipts":
            row["cohorts_affected"] = json.dumps(e.get("cohorts_affected", []))
            row["window_actions"] = e.get("window", {}).get("actions")
        elif table == "escalations":
            row["evidence"] = json.dumps(e.get("evidence"), ensure_ascii=False)
        self._add(table, row)

    def add_rejected(self, row: dict[str, Any]) -> None:
        """A rejected.jsonl row: `line`, `item`, `code`, `reason`, `record`."""
        self._add("rejected", row)

    def add_sealed(self, mission_id: str, key: Key, cell: Cell) -> None:
        """A ledger cell the monitor sealed: one part of the cell (the table sums its parts)."""
        for row in cell_rows(mission_id, key, cell):
            self._add("ledger", row)

    def _action_row(self, line: int, a: Accepted, m: ActionRecord) -> dict[str, Any]:
        tpl = m.attributes.get(self.monitor.template_attribute(m.mission_id))
        row: dict[str, Any] = {
            "receipt_id": m.receipt_id, "mission_id": m.mission_id, "agent_id": m.agent_id,
            "action_type": m.action_type, "decision": m.decision, "subject_id": m.subject.id,
            "occurred_at": m.occurred_at, "template": tpl if isinstance(tpl, str) else None,
            "policy_version": m.policy_version,
            "attributes": json.dumps(m.attributes, sort_keys=True, ensure_ascii=False),
            "record_hash": a.hash, "batch_hash": a.batch_hash, "key_id": a.key_id, "line": line,
        }
        for k, v in (m.subject.cohort or {}).items():
            row[self._cohort.column(k)] = v
        for k, v in m.attributes.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                row[self._numeric.column(k)] = float(v)
        return row

    def _outcome_row(self, line: int, a: Accepted, o: OutcomeRecord) -> dict[str, Any]:
        cohort = o.subject.cohort or self.monitor.subject_cohort(o.mission_id, o.subject.id)
        row: dict[str, Any] = {
            "outcome_id": o.outcome_id, "mission_id": o.mission_id, "subject_id": o.subject.id,
            "outcome_type": o.outcome_type, "value": o.value, "occurred_at": o.occurred_at,
            "attributed": cohort is not None, "record_hash": a.hash, "batch_hash": a.batch_hash,
            "key_id": a.key_id, "line": line}
        for k, v in (cohort or {}).items():
            row[self._outcome_cohort.column(k)] = v
        if cohort is None:  # its subject may still show up: settled at close()
            self._unattributed_buffered = True
        return row

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
                view = self.monitor.view(mid)
                assert view is not None
                self._add("missions", _mission_row(view))
            for mid in self.monitor.mission_ids():
                for row in self.monitor.iter_ledger_rows(mid):
                    self._add("ledger", row)
            outcome_names = self._outcome_names()
            for k in outcome_names:  # the last part carries every column the table will have
                self._outcome_cohort.column(k)
            self._flush(last=True)
            self._settle_outcomes()
            built = self._dir / self.path.name
            self._build(built, outcome_names)
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

    def _outcome_names(self) -> dict[str, str]:
        """Outcome cohort attribute -> column name: the actions' cohort attributes, then those
        only outcomes carry."""
        keys = list(self._cohort.columns) + [k for k in self._outcome_own if k not in self._cohort.columns]
        names = _column_names(OUTCOME_COLUMNS + _TRAILER, keys, [])
        return {k: names[f"c:{k}"] for k in keys}

    def _settle_outcomes(self) -> None:
        """Attribute the outcomes whose subject had no known cohort when they were accepted,
        now that the whole input is in."""
        stage = self._stages["outcomes"]
        for n in self._unattributed:
            rows = pl.read_parquet(stage.parts[n]).to_dicts()
            for row in rows:
                cohort = None if row["attributed"] else self.monitor.subject_cohort(row["mission_id"],
                                                                                    row["subject_id"])
                if cohort is not None:
                    row["attributed"] = True
                    for k, v in cohort.items():
                        row[self._outcome_cohort.column(k)] = v
            _frame(rows, stage.columns(rows)).write_parquet(stage.parts[n])

    def _build(self, target: Path, outcome_names: dict[str, str]) -> None:
        names = _column_names(ACTION_COLUMNS + _TRAILER, list(self._cohort.columns), list(self._numeric.columns))
        attributes = {
            "actions": [(c, names[f"c:{k}"]) for k, c in self._cohort.columns.items()]
            + [(c, names[f"n:{k}"]) for k, c in self._numeric.columns.items()],
            "outcomes": [(self._outcome_cohort.columns[k], name) for k, name in outcome_names.items()],
        }
        con = duckdb.connect(str(target))
        try:
            con.execute("SET TimeZone = 'UTC'")
            con.execute("SET preserve_insertion_order = true")
            for table in _TABLES:
                cols = [_select(table, c) for c in table.head]
                cols += [f"{_quote(staged)} AS {_quote(name)}" for staged, name in attributes.get(table.name, [])]
                cols += [_select(table, c) for c in table.tail]
                _run(con, self.memory_limits, f"CREATE TABLE {table.name} AS SELECT {', '.join(cols)} "
                        f"FROM {table.source()}",
                        {"parts": [str(p) for p in self._stages[table.name].parts]})
            con.execute("""
                CREATE VIEW ledger_totals AS
                SELECT mission_id, dimension, cohort, measure, sum(value) AS value
                FROM ledger GROUP BY ALL ORDER BY ALL""")
            # DuckDB checkpoints on close too, but says nothing when that fails (out of memory):
            # the tables would stay in the write-ahead log, which is not moved into place. A
            # failed checkpoint invalidates the database, so it gets DuckDB's default limit.
            con.execute("RESET memory_limit")
            kinds = {name: COHORT_COLUMN.format(name=k[2:]) for k, name in names.items() if k.startswith("c:")}
            kinds |= {name: ATTRIBUTE_COLUMN.format(name=k[2:]) for k, name in names.items() if k.startswith("n:")}
            _comment(con, kinds, {name: COHORT_COLUMN.format(name=k) for k, name in outcome_names.items()})
            con.execute("CHECKPOINT")
        finally:
            con.close()
        if target.with_name(target.name + ".wal").exists():
            raise RuntimeError(f"DuckDB left {target.name}.wal behind: the ledger would be incomplete")


def _comment(con: duckdb.DuckDBPyConnection, action_attributes: dict[str, str],
             outcome_attributes: dict[str, str]) -> None:
    """Every table, view and column says what it holds (store/columns.py; docs/ledger.md)."""
    for table, text in TABLES.items():
        kind = "VIEW" if table == "ledger_totals" else "TABLE"
        con.execute(f"COMMENT ON {kind} {table} IS {sql_literal(text)}")
    extra = {"actions": action_attributes, "outcomes": outcome_attributes}
    for table, column in con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                                     "WHERE NOT internal ORDER BY table_name, column_index").fetchall():
        said = COLUMNS.get(table, {}).get(column) or extra.get(table, {}).get(column)
        if said:
            con.execute(f"COMMENT ON COLUMN {table}.{_quote(column)} IS {sql_literal(said)}")



def _run(con: duckdb.DuckDBPyConnection, limits: Sequence[str | None], sql: str,
         params: dict[str, Any] | None = None) -> None:
    """Run one statement under the first memory limit it fits in (a failed attempt changes
    nothing); the last one's failure stands."""
    for i, limit in enumerate(limits):
        con.execute("SET memory_limit = $limit" if limit else "RESET memory_limit",
                    {"limit": limit} if limit else None)
        try:
            con.execute(sql, params)
            return
        except duckdb.OutOfMemoryException:
            if i == len(limits) - 1:
                raise


def _select(table: _Table, column: str) -> str:
    q = _quote(column)
    if column in table.times:
        return f"CAST({q} AS TIMESTAMPTZ) AS {q}" if table.iso else f"to_timestamp({q}) AS {q}"
    if column in table.json:
        return f"CAST({q} AS JSON) AS {q}"
    return q


def _mission_row(v: MissionView) -> dict[str, Any]:
    return {
        "mission_id": v.mission_id, "registered": v.registered, "spec": v.spec,
        "spec_version": v.spec_version, "objective": v.objective, "proxy_metric": v.proxy_metric,
        "constraints": json.dumps(list(v.constraints)) if v.registered else None,
        "owner": v.owner, "human_delegate": v.human_delegate, "started_at": v.started_at,
        "state": v.state, "cause": v.cause, "review_status": v.review_status, **v.totals,
    }


def _record_id(a: Accepted) -> str | None:
    for k in ("receipt_id", "outcome_id", "review_id", "mission_id"):
        v = a.record.get(k)
        if isinstance(v, str):
            return v
    return None


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
