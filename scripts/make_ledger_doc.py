"""Write the column tables of docs/ledger.md from src/missionwatch/store/columns.py (the same
text DuckDB carries as comments). Run after changing either; tests/store/test_columns.py fails
while they differ."""

from __future__ import annotations

import sys
from pathlib import Path

from missionwatch.store.columns import ATTRIBUTE_COLUMN, COHORT_COLUMN, COLUMNS, TABLES

DOC = Path(__file__).resolve().parents[1] / "docs" / "ledger.md"
START = "<!-- the tables below are written by scripts/make_ledger_doc.py from store/columns.py -->"
END = "<!-- end of the generated tables -->"


def _cell(text: str) -> str:
    """Text safe in a Markdown table cell: pipes escaped, angle brackets not read as HTML."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def tables() -> str:
    out = [START, ""]
    for table, about in TABLES.items():
        out += [f"### `{table}`", "", about, "", "| column | meaning |", "| --- | --- |"]
        out += [f"| `{c}` | {_cell(text)} |" for c, text in COLUMNS[table].items()]
        if table == "actions":
            out += [f"| `<attribute>` | one per cohort attribute: {_cell(COHORT_COLUMN.format(name='<attribute>'))} |",
                    f"| `<attribute>` | one per numeric attribute: {_cell(ATTRIBUTE_COLUMN.format(name='<attribute>'))} |"]
        if table == "outcomes":
            out += [f"| `<attribute>` | one per cohort attribute: {_cell(COHORT_COLUMN.format(name='<attribute>'))} |"]
        out.append("")
    return "\n".join([*out, END])


def written(text: str) -> str:
    """`text` (docs/ledger.md) with its generated part as it should be."""
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return head + tables() + tail


if __name__ == "__main__":
    new = written(DOC.read_text())
    DOC.write_text(new)
    sys.stdout.write(f"wrote {DOC}\n")
