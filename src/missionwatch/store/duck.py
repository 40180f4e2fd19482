"""The analysts' DuckDB ledger (schema documented in README.md, "The ledger").

Tables: missions, actions, outcomes, reviews, strategy_receipts, escalations,
controls, ledger (exact counts per mission x bucket x cohort x measure),
duplicates, rejected. Timestamps are TIMESTAMPTZ in UTC.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from ..monitor import Accepted, Monitor
from ..records import (
    SCHEMA_CONTROL,
    SCHEMA_ESCALATION,
    SCHEMA_STRATEGY,
    ActionRecord,
    MissionRecord,
    OutcomeRecord,
    ReviewRecord,
)

__all__ = ["ACTION_COLUMNS", "write_ledger"]

ACTION_COLUMNS = ("receipt_id", "mission_id", "agent_id", "action_type", "decision", "subject_id",
                  "occurred_at", "template", "policy_version")
_TRAILER = ("attributes", "record_hash", "batch_hash", "key_id", "line")
OUTCOME_COLUMNS = ("outcome_id", "mission_id", "subject_id", "outcome_type", "value", "occurred_at",
                   "attributed")


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


def _frame(rows: list[dict[str, Any]], schema: dict[str, Any]) -> pl.DataFrame:
    return pl.DataFrame({k: [r.get(k) for r in rows] for k in schema}, schema=schema, strict=False)


def write_ledger(path: str | Path, monitor: Monitor, accepted: Sequence[tuple[int, Accepted]],
                 events: Sequence[dict[str, Any]], rejected: Sequence[dict[str, Any]]) -> None:
    """Write a fresh DuckDB file at `path` (replacing any) from one replay's results.

    `accepted` pairs each accepted record with its input line number.
    """
    path = Path(path)
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)
    actions = [(ln, a) for ln, a in accepted if a.kind == "action" and not a.duplicate]
    cohort_keys: dict[str, None] = {}
    numeric_keys: dict[str, None] = {}
    for _, a in actions:
        m = a.model
        assert isinstance(m, ActionRecord)
        for k in (m.subject.cohort or {}):
            cohort_keys.setdefault(k, None)
        for k, v in m.attributes.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                numeric_keys.setdefault(k, None)
    outcome_cohort: dict[str, None] = dict(cohort_keys)
    for _, a in accepted:
        if a.kind == "outcome" and isinstance(a.model, OutcomeRecord):
            for k in (a.model.subject.cohort or {}):
                outcome_cohort.setdefault(k, None)
    names = _column_names(ACTION_COLUMNS + _TRAILER, list(cohort_keys), list(numeric_keys))
    onames = _column_names(OUTCOME_COLUMNS + _TRAILER, list(outcome_cohort), [])

    action_rows = []
    for ln, a in actions:
        m = a.model
        assert isinstance(m, ActionRecord)
        tpl_name = monitor.missions[m.mission_id].spec.actions.template_attribute
        tpl = m.attributes.get(tpl_name)
        row: dict[str, Any] = {
            "receipt_id": m.receipt_id, "mission_id": m.mission_id, "agent_id": m.agent_id,
            "action_type": m.action_type, "decision": m.decision, "subject_id": m.subject.id,
            "occurred_at": m.occurred_at, "template": tpl if isinstance(tpl, str) else None,
            "policy_version": m.policy_version,
            "attributes": json.dumps(m.attributes, sort_keys=True, ensure_ascii=False),
            "record_hash": a.hash, "batch_hash": a.batch_hash, "key_id": a.key_id, "line": ln,
        }
        for k, v in (m.subject.cohort or {}).items():
            row[names[f"c:{k}"]] = v
        for k, v in m.attributes.items():
            if isinstance(v, int | float) and not isinstance(v, bool):
                row[names[f"n:{k}"]] = float(v)
        action_rows.append(row)
    action_schema: dict[str, Any] = {c: pl.Utf8 for c in ACTION_COLUMNS}
    action_schema["occurred_at"] = pl.Float64
    action_schema.update({names[f"c:{k}"]: pl.Utf8 for k in cohort_keys})
    action_schema.update({names[f"n:{k}"]: pl.Float64 for k in numeric_keys})
    action_schema.update({"attributes": pl.Utf8, "record_hash": pl.Utf8, "batch_hash": pl.Utf8,
                          "key_id": pl.Utf8, "line": pl.Int64})

    outcome_rows = []
    for ln, a in accepted:
        if a.kind != "outcome" or a.duplicate:
            continue
        o = a.model
        assert isinstance(o, OutcomeRecord)
        cohort = o.subject.cohort or monitor.subject_cohort(o.mission_id, o.subject.id)
        row = {"outcome_id": o.outcome_id, "mission_id": o.mission_id, "subject_id": o.subject.id,
               "outcome_type": o.outcome_type, "value": o.value, "occurred_at": o.occurred_at,
               "attributed": cohort is not None, "attributes": None, "record_hash": a.hash,
               "batch_hash": a.batch_hash, "key_id": a.key_id, "line": ln}
        for k, v in (cohort or {}).items():
            if f"c:{k}" in onames:
                row[onames[f"c:{k}"]] = v
        outcome_rows.append(row)
    outcome_schema: dict[str, Any] = {
        "outcome_id": pl.Utf8, "mission_id": pl.Utf8, "subject_id": pl.Utf8, "outcome_type": pl.Utf8,
        "value": pl.Float64, "occurred_at": pl.Float64, "attributed": pl.Boolean}
    outcome_schema.update({onames[f"c:{k}"]: pl.Utf8 for k in outcome_cohort})
    outcome_schema.update({"record_hash": pl.Utf8, "batch_hash": pl.Utf8, "key_id": pl.Utf8, "line": pl.Int64})

    review_rows = []
    for ln, a in accepted:
        if a.kind == "review" and not a.duplicate and isinstance(a.model, ReviewRecord):
            r = a.model
            review_rows.append({"review_id": r.review_id, "mission_id": r.mission_id,
                                "escalation_id": r.escalation_id, "reviewer": r.reviewer,
                                "decision": r.decision, "note": r.note, "occurred_at": r.occurred_at,
                                "record_hash": a.hash, "key_id": a.key_id, "line": ln})
    review_schema: dict[str, Any] = {k: pl.Utf8 for k in (
        "review_id", "mission_id", "escalation_id", "reviewer", "decision", "note")}
    review_schema.update({"occurred_at": pl.Float64, "record_hash": pl.Utf8, "key_id": pl.Utf8,
                          "line": pl.Int64})

    mission_rows = []
    for mid, ms in sorted(monitor.missions.items()):
        reg: MissionRecord | None = ms.registration
        mission_rows.append({
            "mission_id": mid, "registered": ms.registered, "spec": ms.spec.name,
            "spec_version": ms.spec.version, "objective": reg.objective if reg else None,
            "proxy_metric": reg.proxy_metric if reg else None,
            "constraints": json.dumps(list(reg.constraints)) if reg else None,
            "owner": reg.owner if reg else None, "human_delegate": reg.human_delegate if reg else None,
            "started_at": reg.started_at if reg else None, "state": ms.state, "cause": ms.cause,
            "review_status": ms.review_status, "actions": ms.n_actions, "outcomes": ms.n_outcomes,
            "subjects": len(ms.subjects), "duplicates": ms.duplicates,
            "unattributed_outcomes": sum(len(v) for v in ms.pending_outcomes.values()),
        })
    mission_schema: dict[str, Any] = {
        "mission_id": pl.Utf8, "registered": pl.Boolean, "spec": pl.Utf8, "spec_version": pl.Utf8,
        "objective": pl.Utf8, "proxy_metric": pl.Utf8, "constraints": pl.Utf8, "owner": pl.Utf8,
        "human_delegate": pl.Utf8, "started_at": pl.Float64, "state": pl.Utf8, "cause": pl.Utf8,
        "review_status": pl.Utf8, "actions": pl.Int64, "outcomes": pl.Int64, "subjects": pl.Int64,
        "duplicates": pl.Int64, "unattributed_outcomes": pl.Int64}

    def out_rows(schema: str, cols: tuple[str, ...]) -> list[dict[str, Any]]:
        return [{**{c: e.get(c) for c in cols}, "record": json.dumps(e, ensure_ascii=False)}
                for e in events if e["schema"] == schema]

    sr = out_rows(SCHEMA_STRATEGY, ("receipt_id", "mission_id", "seq", "issued_at",
                                    "review_status", "state", "current_tactic_cluster",
                                    "hash", "prev_hash"))
    for row, e in zip(sr, (e for e in events if e["schema"] == SCHEMA_STRATEGY), strict=True):
        row["cohorts_affected"] = json.dumps(e.get("cohorts_affected", []))
        row["window_actions"] = e.get("window", {}).get("actions")
    esc = out_rows(SCHEMA_ESCALATION, ("escalation_id", "mission_id", "seq", "issued_at",
                                       "severity", "detector", "code", "reason",
                                       "triggered_by", "hash", "prev_hash"))
    for row, e in zip(esc, (e for e in events if e["schema"] == SCHEMA_ESCALATION), strict=True):
        row["evidence"] = json.dumps(e.get("evidence"), ensure_ascii=False)
    ctl = out_rows(SCHEMA_CONTROL, ("mission_id", "seq", "issued_at", "state", "cause",
                                    "hash", "prev_hash"))
    ledger_rows = [r for mid, ms in sorted(monitor.missions.items()) for r in ms.ledger.rows(mid)]
    dup_rows = [{"kind": a.kind, "id": _record_id(a), "mission_id": a.record.get("mission_id"),
                 "record_hash": a.hash, "line": ln} for ln, a in accepted if a.duplicate]

    con = duckdb.connect(str(path))
    try:
        con.execute("SET TimeZone = 'UTC'")
        ts = "to_timestamp({c}) AS {c}"
        _create(con, "missions", _frame(mission_rows, mission_schema), ["started_at"], ts)
        _create(con, "actions", _frame(action_rows, action_schema), ["occurred_at"], ts)
        _create(con, "outcomes", _frame(outcome_rows, outcome_schema), ["occurred_at"], ts)
        _create(con, "reviews", _frame(review_rows, review_schema), ["occurred_at"], ts)
        sr_schema: dict[str, Any] = {"receipt_id": pl.Utf8, "mission_id": pl.Utf8, "seq": pl.Int64,
                                     "issued_at": pl.Utf8, "review_status": pl.Utf8, "state": pl.Utf8,
                                     "current_tactic_cluster": pl.Utf8, "cohorts_affected": pl.Utf8,
                                     "window_actions": pl.Int64, "hash": pl.Utf8, "prev_hash": pl.Utf8,
                                     "record": pl.Utf8}
        iso = "CAST({c} AS TIMESTAMPTZ) AS {c}"
        _create(con, "strategy_receipts", _frame(sr, sr_schema), ["issued_at"], iso,
                json_cols=["record", "cohorts_affected"])
        esc_schema: dict[str, Any] = {k: pl.Utf8 for k in (
            "escalation_id", "mission_id", "issued_at", "severity", "detector", "code", "reason",
            "triggered_by", "evidence", "hash", "prev_hash", "record")}
        esc_schema["seq"] = pl.Int64
        _create(con, "escalations", _frame(esc, esc_schema), ["issued_at"], iso,
                json_cols=["evidence", "record"])
        ctl_schema: dict[str, Any] = {k: pl.Utf8 for k in (
            "mission_id", "issued_at", "state", "cause", "hash", "prev_hash", "record")}
        ctl_schema["seq"] = pl.Int64
        _create(con, "controls", _frame(ctl, ctl_schema), ["issued_at"], iso, json_cols=["record"])
        ledger_schema: dict[str, Any] = {"mission_id": pl.Utf8, "bucket_start": pl.Float64,
                                         "dimension": pl.Utf8, "cohort": pl.Utf8, "measure": pl.Utf8,
                                         "value": pl.Float64}
        _create(con, "ledger", _frame(ledger_rows, ledger_schema), ["bucket_start"], ts)
        dup_schema: dict[str, Any] = {"kind": pl.Utf8, "id": pl.Utf8, "mission_id": pl.Utf8,
                                      "record_hash": pl.Utf8, "line": pl.Int64}
        _create(con, "duplicates", _frame(dup_rows, dup_schema), [], ts)
        rej_schema: dict[str, Any] = {"line": pl.Int64, "item": pl.Int64, "code": pl.Utf8,
                                      "reason": pl.Utf8, "record": pl.Utf8}
        _create(con, "rejected", _frame(list(rejected), rej_schema), [], ts)
        con.execute("""
            CREATE VIEW ledger_totals AS
            SELECT mission_id, dimension, cohort, measure, sum(value) AS value
            FROM ledger GROUP BY ALL ORDER BY ALL""")
    finally:
        con.close()


def _record_id(a: Accepted) -> str | None:
    for k in ("receipt_id", "outcome_id", "review_id", "mission_id"):
        v = a.record.get(k)
        if isinstance(v, str):
            return v
    return None


def _create(con: duckdb.DuckDBPyConnection, name: str, df: pl.DataFrame, time_cols: list[str],
            template: str, json_cols: Sequence[str] = ()) -> None:
    arrow = df.to_arrow()  # noqa: F841 - read by name from DuckDB
    cols = []
    for c in df.columns:
        q = '"' + c.replace('"', '""') + '"'
        if c in time_cols:
            cols.append(template.format(c=q))
        elif c in json_cols:
            cols.append(f"CAST({q} AS JSON) AS {q}")
        else:
            cols.append(q)
    con.execute(f"CREATE TABLE {name} AS SELECT {', '.join(cols)} FROM arrow")

