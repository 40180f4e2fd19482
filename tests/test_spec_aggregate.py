"""Metrics that are totals (`aggregate = "sum"` or `"count"`): what a spec may say about
them, and the precise error, with its line, for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from missionwatch.spec import SpecError, load_spec

HEAD = '''[spec]
name = "totals"

[cohorts]
protected = ["age_band"]

[actions]
types = ["email.send", "refund.issue"]
'''

REFUNDS = '''
[[metrics]]
name = "refund_total"
per = "action"
actions = ["refund.issue"]
attribute = "amount"
aggregate = "sum"
'''


def spec_error(tmp_path: Path, body: str) -> str:
    path = tmp_path / "totals.toml"
    path.write_text(HEAD + body)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    return str(exc.value)


def line_of(body: str, needle: str, after: str = "") -> int:
    text = HEAD + body
    start = text.index(after) if after else 0
    return text[:text.index(needle, start)].count("\n") + 1


def test_the_default_is_a_mean_and_totals_load(tmp_path: Path) -> None:
    path = tmp_path / "totals.toml"
    path.write_text(HEAD + REFUNDS + '''
[[metrics]]
name = "refunds"
per = "action"
actions = ["refund.issue"]
aggregate = "count"

[[metrics]]
name = "escalated"
per = "action"
decisions = ["escalated", "denied"]
aggregate = "count"

[[metrics]]
name = "mean_refund"
per = "action"
actions = ["refund.issue"]
attribute = "amount"

[[risk]]
metric = "refunds"

[[limits]]
metric = "refund_total"
above = 50000.0

[[limits]]
metric = "refund_total"
below = -100.0

[[limits]]
metric = "escalated"
scope = "cohort"
above = 200
''')
    spec = load_spec(path)
    assert [m.aggregate for m in spec.metrics] == ["sum", "count", "count", "mean"]
    assert [m.total for m in spec.metrics] == [True, True, True, False]
    refunds, escalated = spec.metric("refunds"), spec.metric("escalated")
    assert refunds.value("allowed", {}) == 1.0  # a count without decisions: every matching action
    assert (escalated.value("escalated", {}), escalated.value("allowed", {})) == (1.0, 0.0)
    assert spec.metric("refund_total").value("allowed", {"amount": 12.5}) == 12.5
    assert spec.metric("refund_total").value("allowed", {}) is None


SHAPE = [  # (metric body, the line's needle, what the error says)
    ('name = "m"\nper = "action"\nactions = ["refund.issue"]\ndecisions = ["denied"]\naggregate = "sum"\n',
     'aggregate = "sum"', "metrics[1].aggregate: aggregate = 'sum' totals an attribute and takes no decisions"),
    ('name = "m"\nper = "action"\nactions = ["refund.issue"]\naggregate = "sum"\n',
     'aggregate = "sum"', "metrics[1].aggregate: aggregate = 'sum' needs attribute"),
    ('name = "m"\nper = "action"\nattribute = "amount"\ndecisions = ["denied"]\naggregate = "sum"\n',
     'aggregate = "sum"', "metrics[1].aggregate: aggregate = 'sum' totals an attribute and takes no decisions"),
    ('name = "m"\nper = "action"\nattribute = "amount"\naggregate = "count"\n',
     'aggregate = "count"', "metrics[1].aggregate: aggregate = 'count' counts matching actions and takes no "
     "attribute"),
    ('name = "m"\nper = "subject"\ncount_actions = ["refund.issue"]\naggregate = "sum"\n',
     'aggregate = "sum"', "metrics[1].aggregate: aggregate = 'sum' needs per = 'action'"),
    ('name = "m"\nper = "subject"\ncount_outcomes = ["refund.issue"]\naggregate = "count"\n',
     'aggregate = "count"', "metrics[1].aggregate: aggregate = 'count' needs per = 'action'"),
    ('name = "m"\nper = "action"\nactions = ["refund.issue"]\n',
     "[[metrics]]", "metrics[1]: a per-action metric takes exactly one of attribute or decisions"),
    ('name = "m"\nper = "action"\nattribute = "amount"\ndecisions = ["denied"]\naggregate = "mean"\n',
     "[[metrics]]", "metrics[1]: a per-action metric takes exactly one of attribute or decisions"),
    ('name = "m"\nper = "action"\nattribute = "amount"\naggregate = "total"\n',
     'aggregate = "total"', "metrics[1].aggregate: Input should be 'mean', 'sum' or 'count'"),
]


@pytest.mark.parametrize(("metric", "needle", "says"), SHAPE)
def test_each_shape_mistake_has_its_error_and_line(tmp_path: Path, metric: str, needle: str, says: str) -> None:
    body = REFUNDS + "\n[[metrics]]\n" + metric
    error = spec_error(tmp_path, body)
    line = line_of(body, needle, 'name = "m"' if needle != "[[metrics]]" else "aggregate = \"sum\"")
    assert f"line {line}: {says}" in error, error
    assert error.count("; ") == 0, error  # one mistake, one error


USES = [  # (rules on refund_total or a count, the line's needle, what the error says)
    ('[[fairness]]\nmetric = "refund_total"\nharm = "higher"\nmax_gap = 10.0\n', 'metric = "refund_total"',
     "fairness[0].metric 'refund_total': fairness compares means, and metric 'refund_total' aggregates as sum"),
    ('[[risk]]\nmetric = "refund_total"\nstatistic = "variance"\n', 'statistic = "variance"',
     "risk[0].statistic: variance needs a mean, and metric 'refund_total' aggregates as sum"),
    ('[[metrics]]\nname = "refunds"\nper = "action"\nactions = ["refund.issue"]\naggregate = "count"\n'
     '[[limits]]\nmetric = "refunds"\nbelow = 3.0\n', "below = 3.0",
     "limits[0].below: metric 'refunds' aggregates as count, which only grows"),
    ('[[metrics]]\nname = "refunds"\nper = "action"\nactions = ["refund.isue"]\naggregate = "count"\n',
     'actions = ["refund.isue"]', "metrics[1].actions names 'refund.isue', which actions.types does not declare"),
]


@pytest.mark.parametrize(("rules", "needle", "says"), USES)
def test_each_misuse_of_a_total_has_its_error_and_line(tmp_path: Path, rules: str, needle: str, says: str) -> None:
    body = REFUNDS + "\n" + rules
    error = spec_error(tmp_path, body)
    assert f"line {line_of(body, needle)}: {says}" in error, error


def test_spec_check_accepts_totals_and_warns_on_their_unseen_names(tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    path = tmp_path / "totals.toml"
    path.write_text(HEAD + REFUNDS + '\n[[metrics]]\nname = "emails"\nper = "action"\nactions = ["email.send"]\n'
                    'aggregate = "count"\n\n[[limits]]\nmetric = "refund_total"\nabove = 50000.0\n')
    stream = tmp_path / "stream.jsonl"
    stream.write_text(json.dumps({"action_type": "refund.issue", "attributes": {"amt": 3}}) + "\n")
    out = subprocess.run([sys.executable, "-m", "missionwatch.cli", "spec", "check", str(path), "--stream",
                          str(stream)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok:" in out.stdout and "1 limits" in out.stdout, out
    warnings = [w for w in out.stderr.splitlines() if "warning" in w]
    assert any("metrics[0] (refund_total): no action carries attribute 'amount'" in w for w in warnings), warnings
    assert any("metrics[1] (emails): no action of type 'email.send'" in w for w in warnings), warnings
    bad = tmp_path / "bad" / "totals.toml"
    bad.parent.mkdir()
    no_attribute = REFUNDS.replace('attribute = "amount"\n', "")
    bad.write_text(HEAD + no_attribute)
    out = subprocess.run([sys.executable, "-m", "missionwatch.cli", "spec", "check", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "aggregate = 'sum' needs attribute" in out.stderr
    assert f"line {line_of(no_attribute, 'aggregate')}: metrics[0].aggregate" in out.stderr, out.stderr
