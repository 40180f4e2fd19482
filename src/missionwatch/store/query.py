"""Read-only SQL over a ledger: a replay's `ledger.duckdb`, or a running service's data
directory, whose out records (`DATA/out/<mission>.jsonl`) appear as the tables
`strategy_receipts`, `escalations` and `controls` with the columns a replay's ledger gives
them, beside `out_records` (one JSON `record` per line). Both have `chain_audit`: each out
record's link to its predecessor, with what breaks it. What `missionwatch sql` and
`missionwatch export` read.

A service's files grow while it runs: each query reads them as they are, and a line the
service is still writing is left out (DuckDB's `ignore_errors`), so counts never exceed what
was issued and never go back.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from .live import attach
from .rows import sql_literal

__all__ = ["CHAIN_AUDIT", "OUT_TABLES", "LedgerError", "open_ledger", "sql_literal"]

OUT_TABLES = {
    "strategy_receipts": ("missionwatch/strategy@1", """
        record->>'receipt_id' AS receipt_id, record->>'mission_id' AS mission_id,
        CAST(record->>'seq' AS BIGINT) AS seq, CAST(record->>'issued_at' AS TIMESTAMPTZ) AS issued_at,
        record->>'review_status' AS review_status, record->>'state' AS state,
        record->>'current_tactic_cluster' AS current_tactic_cluster,
        CAST(record->'cohorts_affected' AS JSON) AS cohorts_affected,
        CAST(record->'window'->>'actions' AS BIGINT) AS window_actions,
        record->>'hash' AS hash, record->>'prev_hash' AS prev_hash, record"""),
    "escalations": ("missionwatch/escalation@1", """
        record->>'escalation_id' AS escalation_id, record->>'mission_id' AS mission_id,
        CAST(record->>'issued_at' AS TIMESTAMPTZ) AS issued_at, record->>'severity' AS severity,
        record->>'detector' AS detector, record->>'code' AS code, record->>'reason' AS reason,
        record->>'triggered_by' AS triggered_by, CAST(record->'evidence' AS JSON) AS evidence,
        record->>'hash' AS hash, record->>'prev_hash' AS prev_hash, record,
        CAST(record->>'seq' AS BIGINT) AS seq"""),
    "controls": ("missionwatch/control@1", """
        record->>'mission_id' AS mission_id, CAST(record->>'issued_at' AS TIMESTAMPTZ) AS issued_at,
        record->>'state' AS state, record->>'cause' AS cause, record->>'hash' AS hash,
        record->>'prev_hash' AS prev_hash, record, CAST(record->>'seq' AS BIGINT) AS seq"""),
    "checkpoints": ("missionwatch/checkpoint@1", """
        record->>'mission_id' AS mission_id, CAST(record->>'tree_size' AS BIGINT) AS tree_size,
        record->>'root_hash' AS root_hash, CAST(record->>'issued_at' AS TIMESTAMPTZ) AS issued_at,
        record->>'origin' AS origin, record->>'note' AS note, record->>'hash' AS hash, record"""),
}
"""The tables a service's out records make: name -> (schema, the SELECT list over `record`)."""


CHAIN_AUDIT = """
CREATE TEMP VIEW chain_audit AS
WITH chain AS (
    SELECT mission_id, seq, hash, prev_hash, 'strategy_receipts' AS from_table FROM strategy_receipts
    UNION ALL SELECT mission_id, seq, hash, prev_hash, 'escalations' FROM escalations
    UNION ALL SELECT mission_id, seq, hash, prev_hash, 'controls' FROM controls
), linked AS (
    SELECT *, lag(seq) OVER w AS previous_seq, lag(hash) OVER w AS previous_hash,
           count(*) OVER (PARTITION BY mission_id, seq) AS copies
    FROM chain WINDOW w AS (PARTITION BY mission_id ORDER BY seq)
)
SELECT mission_id, seq, from_table, hash, prev_hash, previous_seq, previous_hash,
       CASE WHEN copies > 1 THEN 'seq ' || seq || ' appears ' || copies || ' times'
            WHEN previous_seq IS NULL AND seq <> 0 THEN 'the chain starts at seq ' || seq || ', not 0'
            WHEN previous_seq IS NULL AND prev_hash IS NOT NULL THEN 'seq 0 names a predecessor'
            WHEN previous_seq IS NOT NULL AND seq <> previous_seq + 1
                THEN 'seq ' || seq || ' follows seq ' || previous_seq || ': records are missing'
            WHEN previous_seq IS NOT NULL AND prev_hash IS DISTINCT FROM previous_hash
                THEN 'prev_hash is not the hash of seq ' || previous_seq
       END AS break
FROM linked
"""
"""Each out record's link to its predecessor in its mission's chain, recomputed: `break` says
what is wrong (a missing, repeated or re-linked record), NULL where the link holds. It checks
the links, not the hashes themselves (`missionwatch verify` recomputes those)."""


class LedgerError(ValueError):
    """A ledger that cannot be opened; the message names the path and why."""


def open_ledger(*, ledger: Path | None = None, data: Path | None = None) -> duckdb.DuckDBPyConnection:
    """A read-only connection: to a replay's ledger file, or over a service's data directory."""
    if (ledger is None) == (data is None):
        raise LedgerError("name one ledger: --ledger FILE (a replay's ledger.duckdb) or --data DIR "
                          "(a running service's data directory)")
    if ledger is not None:
        if not ledger.is_file():
            raise LedgerError(f"{ledger}: no such ledger file")
        try:
            con = duckdb.connect(str(ledger), read_only=True)
            con.execute(CHAIN_AUDIT)
            return con
        except duckdb.Error as exc:
            raise LedgerError(f"{ledger}: not a DuckDB ledger ({str(exc).splitlines()[0]})") from None
    assert data is not None
    if not data.is_dir():
        raise LedgerError(f"{data}: no such data directory")
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    if (data / "ledger" / "commits").is_dir():
        attach(con, data / "ledger")
        con.execute("CREATE VIEW out_records AS " + " UNION ALL ".join(
            f"SELECT record FROM {t}" for t in OUT_TABLES))
    else:  # a service run without its live ledger: its out records only
        _out_records(con, data / "out")
    con.execute(CHAIN_AUDIT)
    return con


def _out_records(con: duckdb.DuckDBPyConnection, out: Path) -> None:
    if any(out.glob("*.jsonl")):
        source = (f"SELECT CAST(json AS JSON) AS record FROM read_json_objects({sql_literal(str(out / '*.jsonl'))}, "
                  "format = 'newline_delimited', ignore_errors = true) WHERE json IS NOT NULL")
    else:  # a service that has issued nothing yet: the tables exist, empty
        source = "SELECT CAST(NULL AS JSON) AS record WHERE false"
    con.execute(f"CREATE VIEW out_records AS {source}")
    for table, (schema, columns) in OUT_TABLES.items():
        con.execute(f"CREATE VIEW {table} AS SELECT {columns} FROM out_records "
                    f"WHERE record->>'schema' = '{schema}'")
