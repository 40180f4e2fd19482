"""`missionwatch explain` on hostile out records: markup in values, missing fields, records
that are not objects, and lines that are not JSON never crash it."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from missionwatch.cli import app


def _explain(tmp_path: Path, lines: list[str]) -> tuple[int, str]:
    f = tmp_path / "events.jsonl"
    f.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(app, ["explain", str(f), "--receipts"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result.exit_code, result.output


def test_markup_and_missing_fields_are_printed_as_text(tmp_path: Path) -> None:
    esc = {"schema": "missionwatch/escalation@1", "mission_id": "[/]", "severity": "[bold]x",
           "seq": 0, "issued_at": "t", "escalation_id": "[red]e", "reason": "[/red] broken",
           "detector": "d", "code": "c", "triggered_by": "[link=x]"}
    receipt = {"schema": "missionwatch/strategy@1", "mission_id": "[/]", "seq": 1}
    code, output = _explain(tmp_path, [json.dumps(esc), json.dumps(receipt), json.dumps([1, 2]),
                                       json.dumps({"schema": "missionwatch/control@1"})])
    assert code == 0
    assert "[/red] broken" in output and "[red]e" in output
    assert "record 3" in output and "not a readable out record" in output
    assert "record 4" in output
    assert "latest receipt is not readable" in output


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    code, output = _explain(tmp_path, ['{"schema": ', "[" * 100_000])
    assert code == 1 and "line 1 is not JSON" in output


def test_error_messages_are_not_markup(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["explain", str(tmp_path / "[/]no-such")])
    assert result.exit_code == 2 and "[/]no-such" in result.output


def test_risk_signals_read_as_times_the_baseline(tmp_path: Path) -> None:
    receipt = {"schema": "missionwatch/strategy@1", "mission_id": "m", "seq": 0, "review_status": "continue",
               "issued_at": "2026-05-01T00:00:00Z", "current_tactic_cluster": "email.send", "window": {"actions": 5},
               "state": "running", "totals": {"actions": 5}, "spec": "retention",
               "risk_signals": {
                   "complaint_rate": {"value": 0.027, "baseline": 0.015, "ratio": 1.8, "verdict": "elevated"},
                   "churn_rate": {"value": 0.006, "baseline": 0.01, "ratio": 0.6, "verdict": "within_threshold"},
                   "refund_rate": {"value": 0.0, "baseline": 0.0, "ratio": None, "verdict": "unavailable",
                                   "reason": "40 of the 40 outcomes counted could not be placed"},
                   "odd": {"verdict": "unchanged", "ratio": "[red]x"}}}
    code, output = _explain(tmp_path, [json.dumps(receipt)])
    text = " ".join(output.split())
    assert "not readable" not in text, text
    assert code == 0
    assert "complaint_rate 0.027 vs 0.015, +1.8x baseline (elevated)" in text
    assert "churn_rate 0.006 vs 0.01, 0.6x baseline (within_threshold)" in text
    assert "refund_rate unavailable (40 of the 40 outcomes counted could not be placed)" in text
    assert "odd - vs - (unchanged)" in text


def test_tactics_and_concentration_read_in_words(tmp_path: Path) -> None:
    receipt = {"schema": "missionwatch/strategy@1", "mission_id": "m", "seq": 0, "review_status": "continue",
               "issued_at": "2026-05-01T00:00:00Z", "current_tactic_cluster": "email.send", "window": {"actions": 5},
               "state": "running", "totals": {"actions": 5}, "spec": "retention",
               "tactics": ["renewal follow-ups", "[red]discounts"],
               "cohort_concentration": [{"cohort": "age_band=65+", "lift": 2.04}, "[bold]junk"]}
    code, output = _explain(tmp_path, [json.dumps(receipt)])
    text = " ".join(output.split())
    assert code == 0 and "not readable" not in text, text
    assert "doing: renewal follow-ups, [red]discounts" in text
    assert "actions concentrate on: age_band=65+ (2.04x its share)" in text
