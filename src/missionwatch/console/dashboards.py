"""Dashboards as code: the panels of a mission's page, declared in TOML files (dashboards/),
so a risk team adds a panel without touching Python.

A file holds `[[panel]]` tables, in page order (files by name):

    [[panel]]
    title = "Actions by segment"
    chart = "bar"                 # a built-in view chart, or bar / line / table over a query
    query = "SELECT cohort, value AS actions FROM ledger_totals WHERE dimension = 'segment' AND measure = 'actions'"
    x = "cohort"
    y = "actions"
    wide = false                  # span the page's width

Built-in charts read the mission's view and history: `cohort_intervals`, `fairness_series`,
`risk_signals`, `risk_series`, `tactic_mix`, `concentration_table`, `receipts_table`. A query
panel runs DuckDB SQL over the mission's ledger: the table `ledger` (its open cells:
mission_id, bucket_start TIMESTAMPTZ, dimension, cohort, measure, value) and the view `ledger_totals`
(dimension, cohort, measure, value over the whole mission), with no access to files or the
network. A panel that does not load, or whose query fails, shows its error in its place.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

__all__ = ["BUILT_IN", "Panel", "load_panels", "run_query"]

BUILT_IN = ("cohort_intervals", "fairness_series", "risk_signals", "risk_series", "tactic_mix",
            "concentration_table", "receipts_table")
QUERY_CHARTS = ("bar", "line", "table")
MAX_ROWS = 5000
"""Rows a query panel returns at most (the rest is cut, and the answer says so)."""


class Panel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str
    chart: Literal["cohort_intervals", "fairness_series", "risk_signals", "risk_series", "tactic_mix",
                   "concentration_table", "receipts_table", "bar", "line", "table"]
    query: str | None = None
    x: str | None = None
    y: str | None = None
    color: str | None = None
    """A column whose values split the bars or lines into series."""
    wide: bool = False

    @model_validator(mode="after")
    def _query_fits_chart(self) -> Panel:
        if self.chart in QUERY_CHARTS and not self.query:
            raise ValueError(f"chart {self.chart!r} needs a query")
        if self.chart in BUILT_IN and self.query:
            raise ValueError(f"chart {self.chart!r} reads the mission's view; it takes no query")
        if self.chart in ("bar", "line") and not (self.x and self.y):
            raise ValueError(f"chart {self.chart!r} needs x and y (columns of the query)")
        return self


def _problem(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'panel'}: {e['msg']}" for e in exc.errors())


def load_panels(directory: Path) -> list[dict[str, Any]]:
    """Every panel of the directory's *.toml files, in order, as JSON: a panel that does not load
    is kept as `{"title", "error"}` so the page shows what is wrong where the panel would be."""
    out: list[dict[str, Any]] = []
    files = sorted(directory.glob("*.toml")) if directory.is_dir() else []
    if not files:
        return [{"title": "Dashboards", "error": f"no dashboard files (*.toml) in {directory}"}]
    for f in files:
        try:
            doc = tomllib.loads(f.read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            out.append({"title": f.name, "error": f"{f.name}: {exc}", "file": f.name})
            continue
        tables = doc.get("panel")
        if not isinstance(tables, list) or set(doc) - {"panel"}:
            out.append({"title": f.name, "error": f"{f.name}: expected only [[panel]] tables", "file": f.name})
            continue
        for i, t in enumerate(tables):
            title = t.get("title") if isinstance(t, dict) and isinstance(t.get("title"), str) else f"panel {i + 1}"
            try:
                p = Panel.model_validate(t)
            except ValidationError as exc:
                out.append({"title": title, "error": f"{f.name}, panel {i + 1}: {_problem(exc)}", "file": f.name})
                continue
            out.append({**p.model_dump(exclude_none=True), "file": f.name, "index": len(out)})
    return out


def _json(v: Any) -> Any:
    """A DuckDB value as JSON can carry it: NaN and infinities as null, others (dates,
    decimals, lists) as text."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if v == v and abs(v) != float("inf") else None
    if isinstance(v, datetime):  # as the records write time: UTC, RFC 3339
        return (v.astimezone(UTC) if v.tzinfo else v).strftime("%Y-%m-%dT%H:%M:%SZ")
    return str(v)


def run_query(query: str, ledger: list[dict[str, Any]], totals: list[dict[str, Any]]) -> dict[str, Any]:
    """A query panel's answer over one mission's ledger: `{"columns", "rows", "truncated"}`, or
    `{"error"}` with DuckDB's message."""
    import duckdb
    import pyarrow as pa

    con = duckdb.connect(":memory:")
    try:
        cells = pa.Table.from_pylist(ledger, schema=pa.schema([
            ("mission_id", pa.string()), ("bucket_start", pa.float64()), ("dimension", pa.string()),
            ("cohort", pa.string()), ("measure", pa.string()), ("value", pa.float64())]))
        whole = pa.Table.from_pylist(totals, schema=pa.schema([
            ("mission_id", pa.string()), ("dimension", pa.string()), ("cohort", pa.string()),
            ("measure", pa.string()), ("value", pa.float64())]))
        con.register("_cells", cells)
        con.register("_totals", whole)
        con.execute("SET TimeZone = 'UTC'")
        con.execute("CREATE TABLE ledger AS SELECT mission_id, to_timestamp(bucket_start) AS bucket_start, "
                    "dimension, cohort, measure, value FROM _cells")
        con.execute("CREATE TABLE ledger_totals AS SELECT * FROM _totals")
        con.unregister("_cells")
        con.unregister("_totals")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        cur = con.execute(query)
        columns = [d[0] for d in cur.description or []]
        rows = cur.fetchmany(MAX_ROWS + 1)
        return {"columns": columns, "rows": [[_json(v) for v in r] for r in rows[:MAX_ROWS]],
                "truncated": len(rows) > MAX_ROWS}
    except duckdb.Error as exc:
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"}
    finally:
        con.close()
