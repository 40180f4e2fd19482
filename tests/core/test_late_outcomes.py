"""Late outcomes: an outcome may arrive before its subject's first action (held, shown as
'unattributed', then ledgered under the subject's cohort in the bucket of its own time) or
long after it; `follows` names the action it follows, whose phase (baseline or post) is the
phase the risk signals count it in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.records import parse_time
from missionwatch.signing import Keyring, Signer
from tests.conftest import action, feed, line, registration, stamp
from tests.core.conftest import of_kind, short_baseline_specs

DAY = 86_400
OLD = {"segment": "smb", "tenure_band": "m4-12", "age_band": "65+", "region": "north"}


def outcome(oid: str, subject: str = "cust-7", t: int = 60, **more: Any) -> dict[str, Any]:
    return {"schema": "missionwatch/outcome@1", "outcome_id": oid, "mission_id": "m-1",
            "subject": {"id": subject}, "outcome_type": "complaint", "occurred_at": stamp(t), **more}


def complaints(monitor: Monitor) -> dict[tuple[float, str, str], float]:
    """The mission's ledgered complaints by (bucket_start, dimension, cohort)."""
    return {(r["bucket_start"], r["dimension"], r["cohort"]): r["value"] for r in monitor.ledger_rows("m-1")
            if r["measure"] == "outcome:complaint"}


def hour_of(t: int) -> float:
    """The ledger bucket (1h) that `stamp(t)` falls in, in epoch seconds."""
    s = parse_time(stamp(t)).timestamp()
    return s - s % 3600


def test_late_and_early_outcomes_join_their_subject_cohort(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    outcome = {"schema": "missionwatch/outcome@1", "outcome_id": "o-1", "mission_id": "m-1",
               "subject": {"id": "cust-7"}, "outcome_type": "complaint", "occurred_at": stamp(5)}
    feed(monitor, gate, outcome)  # before any action of cust-7: pending
    ms = monitor.missions["m-1"]
    assert ms.ledger.totals() == {} and ms.pending_outcomes
    feed(monitor, gate, action(1, subject="cust-7", cohort={"segment": "mid", "age_band": "65+"}))
    totals = ms.ledger.totals()
    assert totals[("age_band", "65+")]["outcome:complaint"] == 1 and not ms.pending_outcomes
    late = {**outcome, "outcome_id": "o-2", "occurred_at": stamp(90_000)}
    feed(monitor, gate, late)
    assert ms.ledger.totals()[("age_band", "65+")]["outcome:complaint"] == 2
    own = {**outcome, "outcome_id": "o-3", "subject": {"id": "cust-7", "cohort": {"age_band": "18-34"}}}
    feed(monitor, gate, own)
    assert ms.ledger.totals()[("age_band", "18-34")]["outcome:complaint"] == 1


def test_an_unseen_subjects_outcome_is_unattributed_then_ledgered_under_its_cohort(
        monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    feed(monitor, gate, registration())
    step = feed(monitor, gate, outcome("o-1", t=60))
    assert step.accepted[0].cohort == {} and not step.out
    # a day later another subject's outcome: the daily receipt shows both held
    receipts = of_kind(feed(monitor, gate, outcome("o-2", subject="cust-8", t=DAY + 60)).out, "strategy")
    assert [(r["totals"]["outcomes"], r["totals"]["unattributed_outcomes"]) for r in receipts] == [(2, 2)]
    assert complaints(monitor) == {}
    # cust-7's first action, a day after its outcome: the outcome joins the 65+ cohort, in its own hour
    feed(monitor, gate, action(1, subject="cust-7", cohort=OLD, t=DAY + 120))
    assert complaints(monitor) == {(hour_of(0), d, v): 1 for d, v in [("*", "*"), *OLD.items()]}
    view = monitor.view("m-1")
    assert view is not None and view.totals["unattributed_outcomes"] == 1
    receipts = of_kind(feed(monitor, gate, action(2, subject="cust-9", cohort=OLD, t=2 * DAY + 120)).out,
                       "strategy")
    assert [(r["totals"]["outcomes"], r["totals"]["unattributed_outcomes"]) for r in receipts] == [(2, 1)]


def test_an_outcome_with_its_own_cohort_is_never_held(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    feed(monitor, gate, registration())
    step = feed(monitor, gate, {**outcome("o-1", subject="cust-x"), "subject": {"id": "cust-x",
                                                                              "cohort": {"age_band": "65+"}}})
    assert step.accepted[0].cohort == {"age_band": "65+"}
    assert complaints(monitor)[(hour_of(60), "age_band", "65+")] == 1
    view = monitor.view("m-1")
    assert view is not None and view.totals["unattributed_outcomes"] == 0


def test_a_held_outcome_counts_in_fairness_and_limits_when_its_subject_is_contacted(
        monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    feed(monitor, gate, registration())
    ms = monitor.missions["m-1"]
    fd = next(fd for fd in ms.fairness["complaint_rate"] if fd.proxy == "age_band")
    hl = ms.limits["complaint_rate"][0]
    feed(monitor, gate, outcome("o-1"))
    feed(monitor, gate, outcome("o-2"))
    assert "65+" not in fd.cohorts and "age_band=65+" not in hl.stats  # nobody contacted yet
    feed(monitor, gate, action(1, subject="cust-7", cohort=OLD))
    assert (fd.cohorts["65+"].n, fd.cohorts["65+"].total) == (1, 2)  # one subject, two complaints
    assert (hl.stats["age_band=65+"].n, hl.stats["age_band=65+"].total) == (1, 2)
    feed(monitor, gate, outcome("o-3", t=90_000))  # after contact: counted at once
    assert (fd.cohorts["65+"].n, fd.cohorts["65+"].total) == (1, 3)


def test_outcome_without_follows_still_feeds_fairness_and_limits(monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    feed(monitor, gate, registration())
    cohort = {"segment": "smb", "tenure_band": "m4-12", "age_band": "65+", "region": "north"}
    feed(monitor, gate, action(1, subject="cust-1", cohort=cohort))
    base = {"schema": "missionwatch/outcome@1", "mission_id": "m-1", "subject": {"id": "cust-1"},
            "outcome_type": "complaint", "occurred_at": stamp(3600)}
    ms = monitor.missions["m-1"]
    fd = next(fd for fd in ms.fairness["complaint_rate"] if fd.proxy == "age_band")
    hl = ms.limits["complaint_rate"][0]
    rs = ms.risk["complaint_rate"][0]
    feed(monitor, gate, {**base, "outcome_id": "o-1"})  # no `follows`: no phase for the risk signal
    assert fd.cohorts["65+"].total == 1 and hl.stats["age_band=65+"].total == 1
    assert rs.base.total == 0
    feed(monitor, gate, {**base, "outcome_id": "o-2", "follows": "r-m-1-1"})
    assert fd.cohorts["65+"].total == 2 and hl.stats["age_band=65+"].total == 2
    assert rs.base.total == 1


# ------------------------------------------------------------------ follows
@pytest.fixture
def short_baseline(tmp_path: Path, keys: dict[str, Signer], keyring: Keyring) -> Monitor:
    """Retention with a baseline of 10 actions: r-m-1-0..9 are baseline, r-m-1-10 and 11 post."""
    m = Monitor(short_baseline_specs(tmp_path), signer=keys["monitor"], keyring=keyring)
    feed(m, keys["gate"], registration())
    for i in range(12):
        feed(m, keys["gate"], action(i, subject=f"cust-{i}", cohort=OLD))
    feed(m, keys["gate"], action(12, subject="cust-12", cohort=OLD, action_type="note.write"))  # not a contact
    feed(m, keys["gate"], action(0, mission="m-2"))
    return m


@pytest.mark.parametrize(("follows", "phase"), [
    ("r-m-1-0", "baseline"), ("r-m-1-9", "baseline"), ("r-m-1-10", "post"), ("r-m-1-11", "post"),
    ("r-m-1-12", None),  # an action that contacted nobody
    ("r-m-1-99", None),  # no such action
    ("r-m-2-0", None),  # another mission's action
])
def test_an_outcome_counts_in_the_phase_of_the_action_it_follows(short_baseline: Monitor,
                                                                 keys: dict[str, Signer], follows: str,
                                                                 phase: str | None) -> None:
    ms = short_baseline.missions["m-1"]
    assert ms.frozen and ms.phase_of(follows) == phase
    rs = ms.risk["complaint_rate"][0]
    assert (rs.base.n, rs.base.total, rs.post.n, rs.post.total) == (10, 0, 2, 0)  # contacts per phase
    # it arrives long after the baseline froze; its phase is the action's, not its arrival's
    step = feed(short_baseline, keys["gate"], outcome("o-1", subject="cust-1", t=30 * DAY, follows=follows))
    assert not step.rejected
    counted = {"baseline": (10, 1, 2, 0), "post": (10, 0, 2, 1), None: (10, 0, 2, 0)}[phase]
    assert (rs.base.n, rs.base.total, rs.post.n, rs.post.total) == counted
    fd = next(fd for fd in ms.fairness["complaint_rate"] if fd.proxy == "age_band")
    assert fd.cohorts["65+"].total == 1  # fairness counts it whatever it follows


def test_an_outcome_held_for_an_unseen_subject_still_has_the_phase_it_follows(short_baseline: Monitor,
                                                                              keys: dict[str, Signer]) -> None:
    rs = short_baseline.missions["m-1"].risk["complaint_rate"][0]
    feed(short_baseline, keys["gate"], outcome("o-1", subject="cust-new", follows="r-m-1-1"))
    assert rs.base.total == 1 and short_baseline.missions["m-1"].pending_outcomes == {
        "cust-new": [(pytest.approx(short_baseline.missions["m-1"].anchor + 60), "complaint", 1.0)]}


def test_an_outcome_held_for_a_subject_whose_first_action_has_no_cohort_is_still_ledgered(
        monitor: Monitor, keys: dict[str, Signer]) -> None:
    gate = keys["gate"]
    outcome = {"schema": "missionwatch/outcome@1", "outcome_id": "o-held", "mission_id": "m-1",
               "subject": {"id": "nobody"}, "outcome_type": "complaint", "occurred_at": stamp(30)}
    assert not monitor.feed(line(gate.sign(outcome))).rejected
    assert not monitor.feed(line(gate.sign(action(1, subject="nobody", cohort={})))).rejected
    view = monitor.view("m-1")
    assert view is not None and view.totals["unattributed_outcomes"] == 0
    cells = monitor.missions["m-1"].ledger.totals()
    assert cells[("*", "*")]["outcome:complaint"] == 1
    assert cells[("age_band", "(none)")]["outcome:complaint"] == 1
