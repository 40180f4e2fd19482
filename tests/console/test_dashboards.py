"""Dashboards as code: the panel files load (a broken one reports itself), and query panels
run DuckDB over one mission's ledger without reaching files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from missionwatch.console.dashboards import MAX_ROWS, load_panels, run_query
from tests.conftest import ROOT
from tests.console.conftest import source


def test_the_shipped_dashboards_load_without_errors() -> None:
    panels = load_panels(ROOT / "dashboards")
    assert panels and not [p for p in panels if "error" in p]
    assert [p["index"] for p in panels] == list(range(len(panels)))
    assert {"cohort_intervals", "risk_signals", "tactic_mix", "receipts_table", "bar", "line"} <= {
        p["chart"] for p in panels}


def test_a_broken_panel_reports_itself_and_the_rest_still_load(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[[panel]]\ntitle = "fine"\nchart = "risk_signals"\n'
                                     '[[panel]]\ntitle = "odd"\nchart = "pie"\n'
                                     '[[panel]]\ntitle = "no query"\nchart = "bar"\n'
                                     '[[panel]]\ntitle = "no axes"\nchart = "line"\nquery = "SELECT 1"\n'
                                     '[[panel]]\ntitle = "both"\nchart = "tactic_mix"\nquery = "SELECT 1"\n'
                                     '[[panel]]\ntitle = "typo"\nchart = "table"\nquery = "SELECT 1"\nwidth = 2\n')
    (tmp_path / "b.toml").write_text("[[panel]\ntitle = ")
    (tmp_path / "c.toml").write_text('title = "not in a panel"\n')
    panels = load_panels(tmp_path)
    assert [p["title"] for p in panels] == ["fine", "odd", "no query", "no axes", "both", "typo", "b.toml", "c.toml"]
    errors = {p["title"]: p.get("error", "") for p in panels}
    assert errors["fine"] == ""
    assert "a.toml, panel 2: chart:" in errors["odd"] and "'cohort_intervals'" in errors["odd"]
    assert "needs a query" in errors["no query"] and "needs x and y" in errors["no axes"]
    assert "takes no query" in errors["both"] and "width: Extra inputs" in errors["typo"]
    assert errors["b.toml"].startswith("b.toml: ") and "only [[panel]] tables" in errors["c.toml"]
    assert load_panels(tmp_path / "nowhere") == [
        {"title": "Dashboards", "error": f"no dashboard files (*.toml) in {tmp_path / 'nowhere'}"}]


def test_a_query_panel_reads_the_missions_ledger(offline: dict[str, Any]) -> None:
    src, _ = source(offline)
    rows = src.ledger_rows("m-gap")
    assert rows is not None and src.ledger_rows("m-none") is None
    (panel,) = [p for p in load_panels(ROOT / "dashboards") if p["chart"] == "bar"]
    got = run_query(panel["query"], *rows)
    share = dict(got["rows"])
    assert got["columns"] == ["age_band", "discount_share"] and set(share) == {"18-34", "35-49", "50-64", "65+"}
    assert share["65+"] < 0.5 * min(v for k, v in share.items() if k != "65+")  # the planted gap, in the ledger
    (line,) = [p for p in load_panels(ROOT / "dashboards") if p["chart"] == "line"]
    hours = run_query(line["query"], *rows)
    assert hours["rows"] and all(str(r[0]).endswith("Z") for r in hours["rows"])
    typed = run_query("SELECT typeof(bucket_start) FROM ledger LIMIT 1", *rows)
    assert typed["rows"] == [["TIMESTAMP WITH TIME ZONE"]]  # TIMESTAMPTZ, as in the analysts' ledger


def test_a_failing_query_answers_its_error_and_reaches_no_file() -> None:
    assert run_query("SELECT nope FROM ledger", [], [])["error"].startswith("BinderException")
    denied = run_query("SELECT * FROM read_csv('/etc/passwd')", [], [])["error"]
    assert "disabled by configuration" in denied
    assert "error" in run_query("SET enable_external_access = true", [], [])
    assert "error" in run_query("ATTACH '/tmp/x.duckdb'", [], [])
    odd = run_query("SELECT 1/0 AS a, 'nan'::DOUBLE AS b, 'inf'::DOUBLE AS c, DATE '2026-05-01' AS d", [], [])
    assert odd["rows"] == [[None, None, None, "2026-05-01"]]
    many = run_query(f"SELECT * FROM range({MAX_ROWS + 10})", [], [])
    assert len(many["rows"]) == MAX_ROWS and many["truncated"]
