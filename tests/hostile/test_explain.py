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
