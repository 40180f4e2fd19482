"""Detector specs: the stock ones load; invalid ones are refused naming file and field."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from missionwatch.spec import Spec, SpecError, load_spec
from tests.conftest import ROOT, SPECS


def test_stock_specs_load_with_their_version() -> None:
    for path in SPECS.glob("*.toml"):
        spec = load_spec(path)
        assert spec.version == "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    retention = load_spec(SPECS / "retention.toml")
    assert retention.cohorts.keys == ["segment", "tenure_band"]
    assert retention.cohorts.protected == ["age_band", "region"]
    assert {r.metric for r in retention.fairness} == {
        "discount_rate", "mean_discount", "cancellation_delay", "escalation_rate", "complaint_rate"}


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda s: s.replace('harm = "lower"\nmax_gap = 0.05', 'harm = "sideways"\nmax_gap = 0.05'), "fairness[0].harm"),
        (lambda s: s.replace('metric = "discount_rate"\nharm', 'metric = "nope"\nharm'), "fairness[0].metric 'nope'"),
        (lambda s: s.replace("alpha = 0.05 ", "alpha = 2 "), "spec.alpha"),
        (lambda s: s.replace('[cadence]\n', '[cadence]\nspeed = 3\n'), "cadence.speed"),
        (lambda s: s.replace('every = "1d"', 'every = "soon"'), "cadence"),
        (lambda s: s + "\n[[limits]]\nmetric = \"churn_rate\"\n", "limits[2]"),
        (lambda s: s.replace("[spec]", "[spec\n"), "not valid TOML"),
        (lambda s: s.replace('bucket = "1h"', 'bucket = "1h"\nintervals = "strict"'),
         "fairness[0].metric 'discount_rate': intervals = 'strict' needs a 0/1 metric"),
    ],
)
def test_invalid_spec_names_file_and_field(tmp_path: Path, edit, field: str) -> None:
    text = edit((SPECS / "retention.toml").read_text())
    path = tmp_path / "retention.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    assert str(path) in str(exc.value) and field in str(exc.value)


def test_spec_name_must_match_file(tmp_path: Path) -> None:
    path = tmp_path / "other.toml"
    path.write_text((SPECS / "retention.toml").read_text())
    with pytest.raises(SpecError, match=r"spec\.name"):
        load_spec(path)


def _fields(model: type) -> set[str]:
    return set(getattr(model, "model_fields", {}))


def test_readme_documents_every_spec_field() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## The spec format", 1)[1].split("\n## ", 1)[0]
    missing = []
    for name, info in Spec.model_fields.items():
        if name == "version":
            continue
        model = info.annotation
        inner = getattr(model, "__args__", (model,))[0]
        for f in _fields(inner):
            if not re.search(rf"`{f}`", section):
                missing.append(f"{name}.{f}")
    assert not missing, f"README's spec format section does not document: {missing}"


def _line(text: str, needle: str, after: str = "") -> int:
    start = text.index(after) if after else 0
    return text[:text.index(needle, start)].count("\n") + 1


@pytest.mark.parametrize(("edit", "needle", "after", "says"), [
    (lambda s: s.replace("alpha = 0.05 ", 'alpha = "0.05" '), 'alpha = "0.05"', "",
     "spec.alpha: Input should be a valid number"),
    (lambda s: s.replace("min_samples = 50", "min_samples = 50.5"), "min_samples = 50.5", "",
     "cohorts.min_samples: Input should be a valid integer"),
    (lambda s: s.replace('harm = "lower"\nmax_gap = 0.05', 'harm = "lower"\nmax_gapp = 0.05', 1), "max_gapp", "",
     "fairness[0].max_gapp: is not a known field"),
    (lambda s: s.replace('count_actions = ["offer.discount"]', 'count_actions = ["offer.discont"]'),
     'count_actions = ["offer.discont"]', "", "metrics[0].count_actions names 'offer.discont', which actions.types "
     "does not declare"),
    (lambda s: s.replace('count_outcomes = ["complaint"]', 'count_outcomes = ["complain"]'),
     'count_outcomes = ["complain"]', "", "names 'complain', which outcomes.types does not declare"),
    (lambda s: s.replace('followup = ["followup.schedule"]', 'followup = ["follow-up.schedule"]'),
     "followup = [", "[actions]", "actions.followup names 'follow-up.schedule'"),
    (lambda s: s.replace('label = "mean discount (%)"\nper = "action"\n', 'label = "mean discount (%)"\n'),
     "[[metrics]]", 'name = "discount_rate"', "metrics[1].per: is required"),
])
def test_errors_name_the_line_and_the_field_in_one_style(tmp_path: Path, edit, needle: str, after: str,
                                                        says: str) -> None:
    text = edit((SPECS / "retention.toml").read_text())
    assert text != (SPECS / "retention.toml").read_text()
    path = tmp_path / "retention.toml"
    path.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(path)
    line = _line(text, needle, after) if needle != "[[metrics]]" else _line(text, "[[metrics]]", 'count_actions = ')
    assert f"line {line}: " in str(exc.value) and says in str(exc.value), str(exc.value)


def test_toml_lines_finds_tables_arrays_and_dotted_keys() -> None:
    from missionwatch.spec import dotted, toml_lines

    text = '[spec]\nname = "x"\n[[metrics]]\nname = "a"\n[[metrics]]\nname = "b"\n[cohorts]\nvalues.age = [1]\n' \
           '[tactics.labels]\n"email.send" = "emails"\n'
    assert toml_lines(text) == {"spec": 1, "spec.name": 2, "metrics[0]": 3, "metrics[0].name": 4, "metrics[1]": 5,
                                "metrics[1].name": 6, "cohorts": 7, "cohorts.values.age": 8, "tactics.labels": 9,
                                "tactics.labels.email.send": 10}
    assert dotted(("fairness", 0, "max_gap")) == "fairness[0].max_gap" and dotted(()) == ""


def test_spec_check_warns_on_what_no_example_contains(tmp_path: Path) -> None:
    import subprocess
    import sys

    spec = tmp_path / "retention.toml"
    spec.write_text((SPECS / "retention.toml").read_text().replace('attribute = "discount_pct"',
                                                                     'attribute = "discount_percent"'))
    stream = SPECS / "examples" / "retention" / "stream.jsonl"
    out = subprocess.run([sys.executable, "-m", "missionwatch.cli", "spec", "check", str(spec), "--stream", str(stream)],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok:" in out.stdout
    assert "metrics[1] (mean_discount): no action carries attribute 'discount_percent'" in out.stderr
    clean = subprocess.run([sys.executable, "-m", "missionwatch.cli", "spec", "check", str(SPECS / "retention.toml")],
                           capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0 and "warning" not in clean.stderr  # its examples/ stream has everything
    missing = subprocess.run([sys.executable, "-m", "missionwatch.cli", "spec", "check", str(spec), "--stream",
                              str(tmp_path / "none.jsonl")], capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such example stream" in missing.stderr
