"""Cohort intersections, judged where the spec asks for them: a `keys` or `protected` name
joining attributes with '+' ('segment+tenure_band') is a cohort attribute of its own, valued
'smb+m4-12', in the ledger, the fairness rules (protected) and cause naming. A follow-up
rise on small businesses in months 4-12 escalates once, with that intersection inside; a
rise on the whole segment names the segment, never one of its intersections. A discount gap
on one intersection of a protected pair is judged beyond."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.signing import Signer
from missionwatch.sim import Campaign, generate
from missionwatch.spec import SpecError, SpecRegistry, load_spec
from tests.conftest import SPECS, stamp


def specs(directory: Path, old: str, new: str) -> SpecRegistry:
    """The stock specs, with `old` replaced by `new` in the retention spec."""
    text = (SPECS / "retention.toml").read_text()
    assert old in text
    (directory / "retention.toml").write_text(text.replace(old, new))
    (directory / "default.toml").write_text((SPECS / "default.toml").read_text())
    return SpecRegistry.load_dir(directory)


KEYS = 'keys = ["segment", "tenure_band"]'


@pytest.fixture(scope="module")
def crossed(tmp_path_factory: pytest.TempPathFactory) -> SpecRegistry:
    return specs(tmp_path_factory.mktemp("crossed"), KEYS, 'keys = ["segment", "tenure_band", "segment+tenure_band"]')


def followup_escalations(registry: SpecRegistry, plant: str) -> tuple[list[dict[str, Any]], Monitor]:
    m = Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True)
    esc = []
    for r in generate(Campaign(mission_id="x", seed=1, actions=20_000, followup_rise=plant)):
        step = m.feed(r)
        assert not step.rejected, step.rejected
        esc += [o for o in step.out if o["schema"] == "missionwatch/escalation@1"]
    return esc, m


def test_a_rise_on_an_intersection_escalates_once_with_it_inside(crossed: SpecRegistry) -> None:
    """Intersections never alarm on their own (more, smaller detectors alarm sooner on luck);
    the rise alarms in the cohorts it lifts, and the one escalation names one of those that
    hold it, with the intersection inside, the most lifted of the related intersections."""
    esc, m = followup_escalations(crossed, "segment=smb,tenure_band=m4-12")
    assert [e["code"] for e in esc] == ["followup_pressure"], [(e["code"], e["reason"]) for e in esc]
    ev = esc[0]["evidence"]
    cause = "segment+tenure_band=smb+m4-12"
    assert ev["cohort"] in (cause, "segment=smb", "tenure_band=m4-12"), ev["cohort"]
    crossed_related = {r["cohort"]: r["lift"] for r in ev["related"] if r["cohort"].startswith("segment+tenure_band=")}
    if ev["cohort"] != cause:
        assert max(crossed_related, key=crossed_related.__getitem__) == cause, crossed_related
    ms = m.missions["x"]
    values = {v for (_, d, v) in ms.ledger.cells if d == "segment+tenure_band"}
    assert values == {f"{s}+{t}" for s in ("smb", "mid", "enterprise") for t in ("m0-3", "m4-12", "m13+")}


def test_a_rise_on_a_whole_segment_still_names_the_segment(crossed: SpecRegistry) -> None:
    esc, _ = followup_escalations(crossed, "segment=smb")
    assert [e["code"] for e in esc] == ["followup_pressure"], [(e["code"], e["reason"]) for e in esc]
    assert esc[0]["evidence"]["cohort"] in ("segment=smb", "*"), esc[0]["evidence"]["cohort"]


def test_a_gap_on_a_protected_intersection_is_judged_beyond(tmp_path: Path) -> None:
    registry = specs(tmp_path, 'protected = ["age_band", "region"]', 'protected = ["age_band", "segment+age_band"]')
    m = Monitor(registry, signer=Signer.generate("m"), allow_unsigned=True)
    m.feed({"schema": "missionwatch/mission@1", "mission_id": "g", "spec": "retention", "objective": "o",
            "started_at": stamp(0)})
    esc = []
    for i in range(4000):
        seg, age = ("smb", "enterprise")[i % 2], ("35-49", "65+")[(i // 2) % 2]
        denied = seg == "smb" and age == "65+"  # only old small-business customers go without
        kind = "offer.discount" if i % 3 == 0 and not denied else "email.send"
        attrs = {"discount_pct": 10.0} if kind == "offer.discount" else {"template": "renewal-v1"}
        step = m.feed({"schema": "missionwatch/action@1", "receipt_id": f"r-{i}", "mission_id": "g",
                       "agent_id": "a", "action_type": kind, "decision": "allowed",
                       "subject": {"id": f"c-{i}", "cohort": {"segment": seg, "age_band": age,
                                                              "segment+age_band": "forged"}},
                       "attributes": attrs, "occurred_at": stamp(i * 30)})
        assert not step.rejected, step.rejected
        esc += [o for o in step.out if o["schema"] == "missionwatch/escalation@1"]
    cohorts = {e["evidence"].get("cohort") for e in esc if e["detector"].startswith("fairness:")}
    assert "segment+age_band=smb+65+" in cohorts, [(e["code"], e["reason"]) for e in esc]
    view = m.view("g")
    assert view is not None and not any("forged" in c for f in view.fairness.values() for c in f)


@pytest.mark.parametrize(("keys", "problem"), [
    ('keys = ["segment", "segment+tenure"]', "'segment+tenure' joins attributes with '+'"),
    ('keys = ["segment", "segment+segment"]', "'segment+segment' joins attributes with '+'"),
    ('keys = ["segment", "tenure_band", "segment+tenure_band+segment+tenure_band"]', "joins attributes"),
])
def test_an_intersection_of_unknown_attributes_is_refused(tmp_path: Path, keys: str, problem: str) -> None:
    path = tmp_path / "retention.toml"
    path.write_text((SPECS / "retention.toml").read_text().replace(KEYS, keys))
    with pytest.raises(SpecError, match="cohorts") as exc:
        load_spec(path)
    assert problem in str(exc.value)
