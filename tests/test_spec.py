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
        (lambda s: s.replace('harm = "lower"\nmax_gap = 0.05', 'harm = "sideways"\nmax_gap = 0.05'), "fairness.0.harm"),
        (lambda s: s.replace('metric = "discount_rate"\nharm', 'metric = "nope"\nharm'), "fairness[0].metric 'nope'"),
        (lambda s: s.replace("alpha = 0.05 ", "alpha = 2 "), "spec.alpha"),
        (lambda s: s.replace('[cadence]\n', '[cadence]\nspeed = 3\n'), "cadence.speed"),
        (lambda s: s.replace('every = "1d"', 'every = "soon"'), "cadence"),
        (lambda s: s + "\n[[limits]]\nmetric = \"churn_rate\"\n", "limits.2"),
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
