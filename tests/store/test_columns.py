"""Every table and column of the analysts' ledger says what it holds: in DuckDB's comments and
in docs/ledger.md, from one source (store/columns.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
from scripts.make_ledger_doc import DOC, written

from missionwatch.store.columns import COLUMNS, TABLES


def test_docs_ledger_md_is_written_from_the_column_source() -> None:
    text = DOC.read_text()
    assert written(text) == text, "run scripts/make_ledger_doc.py"


def test_every_table_and_column_of_a_replayed_ledger_is_documented_and_commented(replayed: dict[str, Any]) -> None:
    con = duckdb.connect(str(replayed["ledger"]), read_only=True)
    columns = con.execute("SELECT table_name, column_name, comment FROM duckdb_columns() WHERE NOT internal "
                          "ORDER BY table_name, column_index").fetchall()
    assert {t for t, _, _ in columns} == set(TABLES)
    assert [(t, c) for t, c, said in columns if not said] == []  # attribute columns too
    fixed = {(t, c) for t, c, _ in columns if not (t in ("actions", "outcomes") and c not in COLUMNS[t])}
    assert fixed == {(t, c) for t, cols in COLUMNS.items() for c in cols}  # no undocumented, no stale
    tables = dict(con.execute("SELECT table_name, comment FROM duckdb_tables()").fetchall())
    tables |= dict(con.execute("SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").fetchall())
    assert tables == TABLES
    attributes = [(t, c, said) for t, c, said in columns if t == "actions" and c not in COLUMNS[t]]
    assert ("actions", "age_band", "the subject's cohort attribute age_band, normalised (CONTRACT 9)") in attributes
    assert any(c == "discount_pct" and "numeric attribute" in said for _, c, said in attributes)


def test_the_doc_names_every_column(tmp_path: Path) -> None:
    text = DOC.read_text()
    for table, cols in COLUMNS.items():
        section = text.split(f"### `{table}`", 1)[1].split("### ", 1)[0]
        for c in cols:
            assert f"| `{c}` |" in section, (table, c)
