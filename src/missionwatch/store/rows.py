"""The analysts' ledger's tables, and their rows made from what the monitor issues: shared by
a replay's ledger file (`duck.LedgerWriter`) and the running service's live ledger
(`live.LiveLedger`), so both have one schema (docs/ledger.md).

Rows are staged before they reach DuckDB. Attribute columns (one per cohort attribute and
per numeric attribute of actions, one per cohort attribute of outcomes) carry staging names
while staged (`c0`, `n0`, `o0`, in order of first appearance: distinct however the
attributes are spelled, DuckDB's names being case-insensitive) and get their names when the
tables are built (`column_names`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import duckdb
import polars as pl

from ..core.views import MissionSummary
from ..ledger import Cell, Key, cell_rows
from ..monitor import Accepted, Monitor
from ..records import (
    SCHEMA_CHECKPOINT,
    SCHEMA_CONTROL,
    SCHEMA_ESCALATION,
    SCHEMA_STRATEGY,
    ActionRecord,
    OutcomeRecord,
    ReviewRecord,
)
from .columns import ATTRIBUTE_COLUMN, COHORT_COLUMN, COLUMNS, TABLES

__all__ = [
    "ACTION_COLUMNS",
    "LEDGER_TOTALS",
    "OUTCOME_COLUMNS",
    "TABLE_DEFS",
    "TRAILER",
    "Attribute",
    "Attributes",
    "RowMaker",
    "Schema",
    "Table",
    "attribute_columns",
    "column_names",
    "comment",
    "frame",
    "mission_row",
    "part_schema",
    "quote",
    "select",
    "select_list",
    "sql_literal",
]

Schema = dict[str, Any]  # column name -> polars dtype, in table order

ACTION_COLUMNS = ("receipt_id", "mission_id", "agent_id", "action_type", "decision", "subject_id",
                  "occurred_at", "template", "policy_version")
TRAILER = ("attributes", "record_hash", "batch_hash", "key_id", "line", "partition")
OUTCOME_COLUMNS = ("outcome_id", "mission_id", "subject_id", "outcome_type", "value", "occurred_at",
                   "follows", "attributed")
_S, _F, _I, _B = pl.Utf8, pl.Float64, pl.Int64, pl.Boolean
_SOURCE: Schema = {"line": _I, "partition": _I}


@dataclass(frozen=True)
class Table:
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

    def source(self, parts: str = "read_parquet($parts, union_by_name = true)") -> str:
        if self.summed is None:
            return parts
        keys = ", ".join(quote(c) for c in self.head if c != self.summed)
        return (f"(SELECT {keys}, sum({quote(self.summed)}) AS {quote(self.summed)} FROM {parts} "
                f"GROUP BY {keys} ORDER BY {keys})")

    @property
    def schema(self) -> Schema:
        return {**self.head, **self.tail}


TABLE_DEFS = (
    Table("missions", {
        "mission_id": _S, "registered": _B, "spec": _S, "spec_version": _S, "objective": _S,
        "proxy_metric": _S, "constraints": _S, "owner": _S, "human_delegate": _S, "started_at": _F,
        "state": _S, "cause": _S, "review_status": _S, "actions": _I, "outcomes": _I, "subjects": _I,
        "duplicates": _I, "unattributed_outcomes": _I}, times=("started_at",), json=("constraints",)),
    Table("actions", {c: _F if c == "occurred_at" else _S for c in ACTION_COLUMNS},
          {"attributes": _S, "record_hash": _S, "batch_hash": _S, "key_id": _S, **_SOURCE},
          times=("occurred_at",), json=("attributes",)),
    Table("outcomes", {"outcome_id": _S, "mission_id": _S, "subject_id": _S, "outcome_type": _S,
                       "value": _F, "occurred_at": _F, "follows": _S, "attributed": _B},
          {"record_hash": _S, "batch_hash": _S, "key_id": _S, **_SOURCE}, times=("occurred_at",)),
    Table("reviews", {"review_id": _S, "mission_id": _S, "escalation_id": _S, "reviewer": _S,
                      "decision": _S, "note": _S, "occurred_at": _F, "record_hash": _S, "key_id": _S,
                      **_SOURCE}, times=("occurred_at",)),
    Table("strategy_receipts", {
        "receipt_id": _S, "mission_id": _S, "seq": _I, "issued_at": _S, "review_status": _S,
        "state": _S, "current_tactic_cluster": _S, "cohorts_affected": _S, "window_actions": _I,
        "hash": _S, "prev_hash": _S, "record": _S}, times=("issued_at",), iso=True,
        json=("record", "cohorts_affected")),
    Table("escalations", {**{k: _S for k in (
        "escalation_id", "mission_id", "issued_at", "severity", "detector", "code", "reason",
        "triggered_by", "evidence", "hash", "prev_hash", "record")}, "seq": _I},
        times=("issued_at",), iso=True, json=("evidence", "record")),
    Table("controls", {**{k: _S for k in ("mission_id", "issued_at", "state", "cause", "hash",
                                           "prev_hash", "record")}, "seq": _I},
          times=("issued_at",), iso=True, json=("record",)),
    Table("checkpoints", {"mission_id": _S, "tree_size": _I, "root_hash": _S, "issued_at": _S, "origin": _S,
                          "note": _S, "hash": _S, "record": _S}, times=("issued_at",), iso=True, json=("record",)),
    Table("ledger", {"mission_id": _S, "bucket_start": _F, "dimension": _S, "cohort": _S,
                     "measure": _S, "value": _F}, times=("bucket_start",), summed="value"),
    Table("duplicates", {"kind": _S, "id": _S, "mission_id": _S, "record_hash": _S, **_SOURCE}),
    Table("rejected", {"line": _I, "item": _I, "code": _S, "reason": _S, "record": _S, "partition": _I}),
)
_OUT_COLUMNS = {
    SCHEMA_STRATEGY: ("strategy_receipts", ("receipt_id", "mission_id", "seq", "issued_at", "review_status",
                                            "state", "current_tactic_cluster", "hash", "prev_hash")),
    SCHEMA_ESCALATION: ("escalations", ("escalation_id", "mission_id", "seq", "issued_at", "severity",
                                        "detector", "code", "reason", "triggered_by", "hash", "prev_hash")),
    SCHEMA_CONTROL: ("controls", ("mission_id", "seq", "issued_at", "state", "cause", "hash", "prev_hash")),
    SCHEMA_CHECKPOINT: ("checkpoints", ("mission_id", "tree_size", "root_hash", "issued_at", "origin", "note", "hash")),
}


def column_names(fixed: Iterable[str], cohort: Sequence[str], numeric: Sequence[str]) -> dict[str, str]:
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


def frame(rows: list[dict[str, Any]], schema: Schema) -> pl.DataFrame:
    return pl.DataFrame({k: [r.get(k) for r in rows] for k in schema}, schema=schema, strict=False)


def sql_literal(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def select(table: Table, column: str) -> str:
    """A staged column as the table shows it: timestamps as TIMESTAMPTZ, JSON typed JSON."""
    q = quote(column)
    if column in table.times:
        return f"CAST({q} AS TIMESTAMPTZ) AS {q}" if table.iso else f"to_timestamp({q}) AS {q}"
    if column in table.json:
        return f"CAST({q} AS JSON) AS {q}"
    return q


def mission_row(v: MissionSummary) -> dict[str, Any]:
    """A mission's row of the `missions` table."""
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


def _outcome_keys(attributes: dict[str, list[str]]) -> list[str]:
    """The outcomes' cohort attributes: the actions' cohort attributes, then those only
    outcomes carry."""
    cohort = attributes.get("c", [])
    return cohort + [k for k in attributes.get("own", []) if k not in cohort]


def attribute_columns(attributes: dict[str, list[str]]) -> dict[str, list[Attribute]]:
    """Per table, each attribute column in order, named (`column_names`): the actions' cohort
    and numeric attributes, the outcomes' cohort attributes; `attributes` as
    `RowMaker.attributes` gives them, the staging names after their places there."""
    cohort, numeric, outcome = attributes.get("c", []), attributes.get("n", []), attributes.get("o", [])
    names = column_names(ACTION_COLUMNS + TRAILER, cohort, numeric)
    keys = _outcome_keys(attributes)
    onames = column_names(OUTCOME_COLUMNS + TRAILER, keys, [])
    return {
        "actions": [Attribute(f"c{i}", names[f"c:{k}"], k) for i, k in enumerate(cohort)]
        + [Attribute(f"n{i}", names[f"n:{k}"], k) for i, k in enumerate(numeric)],
        "outcomes": [Attribute(f"o{outcome.index(k)}" if k in outcome else "o", onames[f"c:{k}"], k)
                     for k in keys],
    }


class Attribute(NamedTuple):
    """An attribute column: its staging name, its name in the table, the attribute it holds."""

    staged: str
    name: str
    attribute: str


class Attributes:
    """Attribute name -> its staging column (`c0`, `c1`, ...), in order of first appearance;
    a new one joins `schema` (the staged table's columns) with `dtype`."""

    def __init__(self, tag: str, schema: Schema, dtype: Any, names: Iterable[str] = ()) -> None:
        self.tag, self.schema, self.dtype = tag, schema, dtype
        self.columns: dict[str, str] = {}
        for name in names:
            self.column(name)

    def column(self, name: str) -> str:
        col = self.columns.get(name)
        if col is None:
            col = self.columns[name] = f"{self.tag}{len(self.columns)}"
            self.schema[col] = self.dtype
        return col


class RowMaker:
    """Rows of the ledger's tables from what the monitor issues, as (table, row) pairs.

    `schemas` holds each table's staged columns: the fixed ones, then the attribute columns
    as they appear. `source` is where a record came from: its input line (a replay), or its
    offset and partition of missionwatch.in (the service)."""

    def __init__(self, monitor: Monitor, *, attributes: dict[str, list[str]] | None = None) -> None:
        self.monitor = monitor
        self.schemas: dict[str, Schema] = {t.name: t.schema for t in TABLE_DEFS}
        known = attributes or {}
        self.cohort = Attributes("c", self.schemas["actions"], _S, known.get("c", ()))
        self.numeric = Attributes("n", self.schemas["actions"], _F, known.get("n", ()))
        self.outcome_cohort = Attributes("o", self.schemas["outcomes"], _S, known.get("o", ()))
        self.outcome_own: dict[str, None] = dict.fromkeys(known.get("own", ()))
        """Cohort attributes outcomes carry themselves, in order of first appearance."""

    def attributes(self) -> dict[str, list[str]]:
        """The attributes seen so far, each kind in order: what a new RowMaker continues from."""
        return {"c": list(self.cohort.columns), "n": list(self.numeric.columns),
                "o": list(self.outcome_cohort.columns), "own": list(self.outcome_own)}

    def accepted(self, a: Accepted, line: int, partition: int | None = None) -> tuple[str, dict[str, Any]] | None:
        """A record the monitor accepted (a duplicate too)."""
        src = {"line": line, "partition": partition}
        if a.kind == "outcome" and isinstance(a.model, OutcomeRecord):
            for k in a.model.subject.cohort or {}:
                self.outcome_own.setdefault(k, None)
        if a.duplicate:
            return "duplicates", {"kind": a.kind, "id": _record_id(a), "mission_id": a.record.get("mission_id"),
                                  "record_hash": a.hash, **src}
        if a.kind == "action" and isinstance(a.model, ActionRecord):
            return "actions", self._action_row(a, a.model, src)
        if a.kind == "outcome" and isinstance(a.model, OutcomeRecord):
            return "outcomes", self._outcome_row(a, a.model, src)
        if a.kind == "review" and isinstance(a.model, ReviewRecord):
            r = a.model
            return "reviews", {"review_id": r.review_id, "mission_id": r.mission_id,
                               "escalation_id": r.escalation_id, "reviewer": r.reviewer, "decision": r.decision,
                               "note": r.note, "occurred_at": r.occurred_at, "record_hash": a.hash,
                               "key_id": a.key_id, **src}
        return None

    @staticmethod
    def event(e: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
        """An out record (strategy receipt, escalation or control signal), as issued."""
        table, cols = _OUT_COLUMNS.get(e["schema"], ("", ()))
        if not table:
            return None
        row = {**{c: e.get(c) for c in cols}, "record": json.dumps(e, ensure_ascii=False)}
        if table == "strategy_receipts":
            row["cohorts_affected"] = json.dumps(e.get("cohorts_affected", []))
            row["window_actions"] = e.get("window", {}).get("actions")
        elif table == "escalations":
            row["evidence"] = json.dumps(e.get("evidence"), ensure_ascii=False)
        return table, row

    @staticmethod
    def sealed(mission_id: str, key: Key, cell: Cell) -> list[dict[str, Any]]:
        """A ledger cell the monitor sealed: one part of the cell (the table sums its parts)."""
        return list(cell_rows(mission_id, key, cell))

    def _action_row(self, a: Accepted, m: ActionRecord, src: dict[str, Any]) -> dict[str, Any]:
        tpl = m.attributes.get(self.monitor.template_attribute(m.mission_id))
        row: dict[str, Any] = {
            "receipt_id": m.receipt_id, "mission_id": m.mission_id, "agent_id": m.agent_id,
            "action_type": m.action_type, "decision": m.decision, "subject_id": m.subject.id,
            "occurred_at": m.occurred_at, "template": tpl if isinstance(tpl, str) else None,
            "policy_version": m.policy_version,
            "attributes": json.dumps(m.attributes, sort_keys=True, ensure_ascii=False),
            "record_hash": a.hash, "batch_hash": a.batch_hash, "key_id": a.key_id, **src,
        }
        for k, v in (m.subject.cohort or {}).items():
            row[self.cohort.column(k)] = v
        for k, v in m.attributes.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                row[self.numeric.column(k)] = float(v)
        return row

    def _outcome_row(self, a: Accepted, o: OutcomeRecord, src: dict[str, Any]) -> dict[str, Any]:
        cohort = o.subject.cohort or self.monitor.subject_cohort(o.mission_id, o.subject.id)
        row: dict[str, Any] = {
            "outcome_id": o.outcome_id, "mission_id": o.mission_id, "subject_id": o.subject.id,
            "outcome_type": o.outcome_type, "value": o.value, "occurred_at": o.occurred_at,
            "follows": o.follows, "attributed": cohort is not None, "record_hash": a.hash,
            "batch_hash": a.batch_hash, "key_id": a.key_id, **src}
        self.attribute_outcome(row, cohort)
        return row

    def attribute_outcome(self, row: dict[str, Any], cohort: dict[str, str] | None) -> None:
        """Give an outcome row its cohort columns (None: unattributed, as it stays)."""
        if cohort is not None:
            row["attributed"] = True
            for k, v in cohort.items():
                row[self.outcome_cohort.column(k)] = v

    def attribute_columns(self) -> dict[str, list[Attribute]]:
        """`attribute_columns` of the attributes seen, each outcome cohort attribute given a
        staging column (a table's last part has them all)."""
        for k in _outcome_keys(self.attributes()):
            self.outcome_cohort.column(k)
        return attribute_columns(self.attributes())


LEDGER_TOTALS = """
    CREATE {kind} ledger_totals AS
    SELECT mission_id, dimension, cohort, measure, sum(value) AS value
    FROM ledger GROUP BY ALL ORDER BY ALL"""
"""The `ledger_totals` view ({kind}: VIEW, or TEMP VIEW)."""


def part_schema(table: Table, schema: Schema, rows: list[dict[str, Any]]) -> Schema:
    """The columns of a part holding `rows`: the fixed ones and the attribute columns they have."""
    fixed = table.head.keys() | table.tail.keys()
    used = {k for row in rows for k in row}
    return {k: t for k, t in schema.items() if k in fixed or k in used}


def select_list(table: Table, attributes: Sequence[Attribute]) -> str:
    """The SELECT list making the table from its staged parts: fixed columns typed, attribute
    columns (staging column, name) named."""
    cols = [select(table, c) for c in table.head]
    cols += [f"{quote(a.staged)} AS {quote(a.name)}" for a in attributes]
    cols += [select(table, c) for c in table.tail]
    return ", ".join(cols)


def comment(con: duckdb.DuckDBPyConnection, attributes: dict[str, list[Attribute]], *,
            views: bool = False) -> None:
    """Every table, view and column says what it holds (store/columns.py; docs/ledger.md);
    `attributes` as `RowMaker.attribute_columns` gives them (`views`: the tables are views)."""
    for table, text in TABLES.items():
        kind = "VIEW" if views or table == "ledger_totals" else "TABLE"
        con.execute(f"COMMENT ON {kind} {table} IS {sql_literal(text)}")
    extra = {t: {a.name: (ATTRIBUTE_COLUMN if a.staged.startswith("n") else COHORT_COLUMN).format(name=a.attribute)
                 for a in cols} for t, cols in attributes.items()}
    for table, column in con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                                     "WHERE NOT internal ORDER BY table_name, column_index").fetchall():
        said = COLUMNS.get(table, {}).get(column) or extra.get(table, {}).get(column)
        if said:
            con.execute(f"COMMENT ON COLUMN {table}.{quote(column)} IS {sql_literal(said)}")
