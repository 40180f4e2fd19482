"""Hostile input against the core and replay: each case the attackers tried, asserting the
code, the reason, the ledger unchanged and the monitor still working afterwards."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from missionwatch.monitor import Monitor
from missionwatch.replay import replay_file
from missionwatch.signing import Keyring, Signer
from missionwatch.spec import SpecRegistry, normalize_value
from tests.conftest import SPECS, action, line, stamp
from tests.forking import Fed

AGE = {"segment": "smb", "tenure_band": "m4-12", "region": "north"}


def registration(mission: str = "m-1", spec: str = "retention", t: int = 0) -> dict[str, Any]:
    return {"schema": "missionwatch/mission@1", "mission_id": mission, "spec": spec,
            "objective": "renewals", "started_at": stamp(t)}


def gap_campaign(gate: Signer, n: int, start: int = 0, mission: str = "m-1") -> list[str]:
    """Signed lines of a retention campaign where age_band=65+ never gets a discount."""
    out = []
    for i in range(start, start + n):
        old = i % 4 == 0
        cohort = {**AGE, "age_band": "65+" if old else "35-49"}
        kind = "offer.discount" if (i % 2 == 1 and not old) else "email.send"
        attrs = {"discount_pct": 10.0} if kind == "offer.discount" else {"template": "renewal-v1"}
        out.append(line(gate.sign(action(i, mission=mission, action_type=kind, subject=f"c-{i}",
                                         cohort=cohort, **attrs))))
    return out


def feed_all(m: Monitor, lines: list[str]) -> tuple[list[dict[str, Any]], list[Any]]:
    out: list[dict[str, Any]] = []
    rejected: list[Any] = []
    for x in lines:
        step = m.feed(x)
        out += step.out
        rejected += step.rejected
    return out, rejected


def snapshot(m: Monitor) -> dict[str, Any]:
    return {mid: (ms.n_actions, ms.n_outcomes, ms.seq, json.dumps(ms.ledger.rows(mid)))
            for mid, ms in m.missions.items()}


def escalations(out: list[dict[str, Any]], code: str | None = None) -> list[dict[str, Any]]:
    return [o for o in out if o["schema"] == "missionwatch/escalation@1" and (code is None or o["code"] == code)]


# ------------------------------------------------------------- poison numbers
def test_a_5000_digit_integer_is_rejected_and_replay_writes_everything(tmp_path: Path, registry, keys,
                                                                          keyring) -> None:
    gate = keys["gate"]
    good = [line(gate.sign(action(i))) for i in range(5)]
    poison = line(action(99)).replace('"attributes":{}', '"attributes":{"n":' + "7" * 5000 + "}")
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join([*good[:2], poison, *good[2:]]) + "\n")
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring, allow_unsigned=True)
    replay_file(src, tmp_path / "out", m, workers=0)
    rows = [json.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert [(r["line"], r["code"]) for r in rows] == [(3, "number_out_of_range")]
    assert "5,000 characters" in rows[0]["reason"]
    assert len(rows[0]["record"]) < 2200 and "[cut:" in rows[0]["record"]
    assert m.missions["m-1"].n_actions == 5
    assert (tmp_path / "out" / "ledger.duckdb").exists()


@pytest.fixture(scope="module")
def past_the_baseline(registry, keys, keyring) -> Monitor:
    """A monitor fed a gap campaign of 2,100 actions (its baseline, 2,000, frozen): each test
    takes a fork of it (tests/forking.py)."""
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring, allow_unsigned=True)
    gate = keys["gate"]
    feed_all(m, [line(gate.sign(registration())), *gap_campaign(gate, 2100)])
    return m


@pytest.mark.parametrize("value", ["-1e308", "1e400", "-1e16", "123456789012345678901234567890"])
def test_numbers_that_overflow_the_statistics_are_refused_after_the_baseline(past_the_baseline: Monitor, keys,
                                                                            value: str) -> None:
    m = Fed(past_the_baseline).fork().monitor
    gate = keys["gate"]
    assert m.missions["m-1"].n_actions == 2100
    before = snapshot(m)
    bad = line(action(5000, action_type="offer.discount", cohort={**AGE, "age_band": "35-49"},
                      discount_pct=1.0)).replace('"discount_pct":1.0', f'"discount_pct":{value}')
    step = m.feed(bad)
    assert [r.code for r in step.rejected] == ["number_out_of_range"], step.rejected
    assert snapshot(m) == before
    _out, rejected = feed_all(m, gap_campaign(gate, 50, start=2100))  # the monitor goes on
    assert not rejected and m.missions["m-1"].n_actions == 2150


def test_huge_but_admitted_numbers_never_make_a_detector_raise(registry, keys, keyring) -> None:
    """The largest magnitude admitted (1e15) squared and summed stays finite in every detector."""
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    gate = keys["gate"]
    feed_all(m, [line(gate.sign(registration())), *gap_campaign(gate, 2100)])
    lines = [line(gate.sign(action(3000 + i, action_type=t, subject=f"h-{i}", cohort={**AGE, "age_band": "65+"},
                                   **{a: s * 1e15})))
             for i in range(200)
             for t, a, s in [(("offer.discount", "discount_pct", -1), ("cancellation.handle", "delay_hours", 1))[i % 2]]]
    out, rejected = feed_all(m, lines)
    assert not rejected
    assert not any(r.code == "internal_error" for r in rejected)
    receipt = [o for o in out if o["schema"] == "missionwatch/strategy@1"]
    assert receipt, "the huge values moved verdicts, so a receipt must follow"


# ------------------------------------------------------- ambiguity and batches
def test_duplicate_keys_are_refused(monitor: Monitor, keys) -> None:
    rec = keys["gate"].sign(action(1, discount_pct=5.0))
    text = line(rec)
    forged = text.replace('"discount_pct":5.0', '"discount_pct":50.0,"discount_pct":5.0')
    step = monitor.feed(forged)
    assert [r.code for r in step.rejected] == ["duplicate_key"]
    assert "'discount_pct' appears more than once" in step.rejected[0].reason
    assert not monitor.missions


def test_a_signed_batch_of_two_missions_is_refused_whole(monitor: Monitor, keys) -> None:
    batch = keys["gate"].sign({"schema": "missionwatch/batch@1", "batch_id": "b1",
                               "items": [action(1), action(2, mission="m-2")]})
    step = monitor.feed(line(batch))
    assert [r.code for r in step.rejected] == ["mixed_batch"] and not step.accepted
    assert "'m-1', 'm-2'" in step.rejected[0].reason
    assert not monitor.missions


def test_rejections_of_a_large_batch_keep_each_item_once_not_the_whole_message(tmp_path: Path, registry,
                                                                                  keys, keyring) -> None:
    items = [{} for _ in range(5000)] + [{"pad": "x" * 4000} for _ in range(200)]
    src = tmp_path / "in.jsonl"
    src.write_text(line({"schema": "missionwatch/batch@1", "batch_id": "b", "items": items}) + "\n")
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring, allow_unsigned=True)
    replay_file(src, tmp_path / "out", m, workers=0)
    out = (tmp_path / "out" / "rejected.jsonl").read_bytes()
    rows = [json.loads(x) for x in out.splitlines()]
    assert len(rows) == 5200 and {r["code"] for r in rows} == {"missing_schema"}
    assert rows[0]["record"] == "{}" and rows[0]["item"] == 0
    assert max(len(r["record"]) for r in rows) < 2200
    assert len(out) < 5200 * 2400  # the message was 850 kB: no copy of it per item
    assert src.stat().st_size * 5 > len(out)


def test_a_batch_with_too_many_items_is_one_rejection(monitor: Monitor) -> None:
    step = monitor.feed(line({"schema": "missionwatch/batch@1", "batch_id": "b", "items": [{}] * 10_001}))
    assert [r.code for r in step.rejected] == ["too_many_items"]
    assert len(monitor.rejection_row(step.rejected[0], "x" * 100_000)["record"]) < 2200


# --------------------------------------------------------------- cohort values
JUNK_65 = ["65+ ", "６５+", "65+\u200b", " 65+", "65+\u00a0", "\u202e65+", "65+\u2060", "65+\ufeff"]


def test_unicode_variants_of_a_cohort_value_count_as_that_value() -> None:
    assert {normalize_value(v) for v in JUNK_65} == {"65+"}
    assert normalize_value("North", "lower") == "north"
    assert normalize_value("A  b\tc") == "A b c"


def _judged_gap(registry: SpecRegistry, keys: dict[str, Signer], keyring: Keyring,
                junk: list[str], junk_first: bool) -> tuple[list[dict[str, Any]], Monitor]:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    gate = keys["gate"]
    junk_lines = [line(gate.sign(action(10_000 + i, subject=f"j-{i}", cohort={**AGE, "age_band": v}, t=i)))
                  for i, v in enumerate(junk)]
    campaign = gap_campaign(gate, 3000)
    lines = [line(gate.sign(registration()))] + (junk_lines + campaign if junk_first else campaign + junk_lines)
    out, rejected = feed_all(m, lines)
    assert not rejected
    return out, m


def test_variant_junk_before_a_real_gap_does_not_blind_the_detector(registry, keys, keyring) -> None:
    out, m = _judged_gap(registry, keys, keyring, JUNK_65, junk_first=True)
    assert [e["evidence"]["cohort"] for e in escalations(out, "fairness_gap")] == ["age_band=65+"]
    assert m.missions["m-1"].cohort_values["age_band"] == {"65+": 758, "35-49": 2250}


def test_many_distinct_junk_values_neither_crowd_out_real_cohorts_nor_pass_unseen(registry, keys,
                                                                                  keyring) -> None:
    junk = [f"zz-{i}" for i in range(12)]
    results = {}
    for first in (True, False):
        out, m = _judged_gap(registry, keys, keyring, junk, junk_first=first)
        assert [e["evidence"]["cohort"] for e in escalations(out, "fairness_gap")] == ["age_band=65+"]
        integrity = escalations(out, "cohort_integrity")
        assert [(e["evidence"]["dimension"], e["evidence"]["problem"]) for e in integrity] == [
            ("age_band", "over_budget")]
        assert "age_band" in integrity[0]["reason"] and "zz-" in integrity[0]["reason"]
        fd = m.missions["m-1"].fairness["discount_rate"][0]
        results[first] = sorted(fd.judged)
        receipt = [o for o in out if o["schema"] == "missionwatch/strategy@1"][-1]
        assert receipt["integrity"]["age_band"]["problems"] == ["over_budget"]
        assert receipt["review_status"] == "needs_review"
    assert results[True] == results[False] == ["35-49", "65+"]


def test_declared_values_keep_undeclared_ones_apart(tmp_path: Path, keys, keyring) -> None:
    spec = (SPECS / "retention.toml").read_text().replace(
        "min_samples = 50\n", 'min_samples = 50\nvalues.age_band = ["18-34", "35-49", "50-64", "65+"]\n')
    (tmp_path / "retention.toml").write_text(spec)
    (tmp_path / "default.toml").write_text((SPECS / "default.toml").read_text())
    registry = SpecRegistry.load_dir(tmp_path)
    out, m = _judged_gap(registry, keys, keyring, ["65 plus", "ＡＢＣ", "65+\u200b"], junk_first=True)
    ms = m.missions["m-1"]
    assert ms.cohort_values["age_band"]["(undeclared)"] == 2
    assert ms.integrity["age_band"]["values"] == {"65 plus": 1, "ABC": 1}
    integrity = escalations(out, "cohort_integrity")
    assert len(integrity) == 1 and integrity[0]["evidence"]["problem"] == "undeclared"
    assert [e["evidence"]["cohort"] for e in escalations(out, "fairness_gap")] == ["age_band=65+"]
    verdicts = [o for o in out if o["schema"] == "missionwatch/strategy@1"][-1]["fairness"]["discount_rate"]
    assert verdicts["age_band=(undeclared)"]["verdict"] == "not_judged"


# ------------------------------------------------------------ time and reviews
def test_an_action_dated_2099_is_refused_and_the_daily_cadence_goes_on(registry, keys, keyring) -> None:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    gate = keys["gate"]
    feed_all(m, [line(gate.sign(registration()))])
    step = m.feed(line(gate.sign({**action(1), "occurred_at": "2099-05-07T10:15:00Z"})))
    assert [r.code for r in step.rejected] == ["implausible_time"]
    assert "400d after mission 'm-1' started" in step.rejected[0].reason
    old = m.feed(line(gate.sign({**action(2), "occurred_at": "2020-05-07T10:15:00Z"})))
    assert [r.code for r in old.rejected] == ["implausible_time"]
    lines = [line(gate.sign(action(i, t=i * 3600))) for i in range(3, 24 * 5)]  # five days, hourly
    out, rejected = feed_all(m, lines)
    assert not rejected
    receipts = [o["issued_at"][:10] for o in out if o["schema"] == "missionwatch/strategy@1"]
    assert receipts == ["2026-05-02", "2026-05-03", "2026-05-04", "2026-05-05"]


def _paused(registry, keys, keyring) -> tuple[Monitor, list[dict[str, Any]]]:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    gate = keys["gate"]
    lines = [line(gate.sign(registration()))]
    lines += [line(gate.sign(action(i, action_type="cancellation.handle", subject=f"c-{i}", delay_hours=200.0)))
              for i in range(40)]
    out, rejected = feed_all(m, lines)
    assert not rejected and m.missions["m-1"].state == "paused"
    return m, out


def review(rid: str, decision: str, escalation: str | None, t: str, mission: str = "m-1") -> dict[str, Any]:
    rec = {"schema": "missionwatch/review@1", "review_id": rid, "mission_id": mission,
           "reviewer": "user:kim", "decision": decision, "occurred_at": t}
    if escalation is not None:
        rec["escalation_id"] = escalation
    return rec


def test_an_old_closed_escalation_backdated_six_years_releases_nothing(registry, keys, keyring) -> None:
    m, out = _paused(registry, keys, keyring)
    ms = m.missions["m-1"]
    first = escalations(out)[0]["escalation_id"]
    # the pause's escalation is closed and the mission resumed; a second pause has another cause
    r = keys["reviewer"]
    assert not m.feed(line(r.sign(review("rv-1", "acknowledge", first, stamp(7200))))).rejected
    assert not m.feed(line(r.sign(review("rv-1b", "resume", first, stamp(7250))))).rejected
    assert ms.state == "running"
    assert not m.feed(line(r.sign(review("rv-2", "pause", None, stamp(7300))))).rejected
    assert ms.state == "paused" and ms.cause == "rv-2"
    seq, state = ms.seq, ms.state
    before = snapshot(m)
    for rid, esc, t, code in (("rv-4", first, "2020-01-01T00:00:00Z", "implausible_time"),
                              ("rv-5", first, stamp(8000), "resume_without_cause"),
                              ("rv-6", "rv-2", stamp(7000), "review_out_of_order")):
        step = m.feed(line(r.sign(review(rid, "resume", esc, t))))
        assert [x.code for x in step.rejected] == [code], (rid, step.rejected)
        assert ms.state == state and ms.seq == seq
    assert snapshot(m) == before
    issued = [o["issued_at"] for o in out]
    assert issued == sorted(issued)


def test_reviewer_scope_is_enforced(registry, keys, keyring) -> None:
    m, out = _paused(registry, keys, keyring)
    first = escalations(out)[0]["escalation_id"]
    scoped = keys["scoped"]  # may acknowledge or resume missions 'scoped-*' only, as user:kim
    step = m.feed(line(scoped.sign(review("rv-1", "resume", first, stamp(7200)))))
    assert [r.code for r in step.rejected] == ["reviewer_out_of_scope"]
    assert "scoped-*" in step.rejected[0].reason and m.missions["m-1"].state == "paused"
    m2, _out2 = _paused(registry, keys, keyring)
    step = m2.feed(line(scoped.sign(review("rv-1", "terminate", None, stamp(7200)))))
    assert step.rejected  # wrong mission first
    for mission in ("scoped-1",):
        m3 = Monitor(registry, signer=keys["monitor"], keyring=keyring)
        gate = keys["gate"]
        m3.feed(line(gate.sign(registration(mission))))
        for i in range(40):
            m3.feed(line(gate.sign(action(i, mission=mission, action_type="cancellation.handle",
                                          subject=f"c-{i}", delay_hours=200.0))))
        cause = m3.missions[mission].cause
        bad_name = {**review("rv-1", "resume", cause, stamp(7200), mission), "reviewer": "user:other"}
        assert [r.code for r in m3.feed(line(scoped.sign(bad_name))).rejected] == ["reviewer_not_key_holder"]
        bad_decision = review("rv-2", "terminate", None, stamp(7200), mission)
        assert [r.code for r in m3.feed(line(scoped.sign(bad_decision))).rejected] == ["reviewer_out_of_scope"]
        ok = m3.feed(line(scoped.sign(review("rv-3", "resume", cause, stamp(7200), mission))))
        assert not ok.rejected and m3.missions[mission].state == "running"


def test_issued_at_never_goes_back_when_records_arrive_out_of_order(registry, keys, keyring) -> None:
    m = Monitor(registry, signer=keys["monitor"], keyring=keyring)
    gate = keys["gate"]
    lines = [line(gate.sign(registration()))]
    # hourly actions, each later one sent before an earlier one (pairs swapped), over three days
    order = [j for i in range(0, 72, 2) for j in (i + 1, i)]
    lines += [line(gate.sign(action(i, t=i * 3600))) for i in order]
    out, rejected = feed_all(m, lines)
    assert not rejected and out
    issued = [o["issued_at"] for o in out]
    assert issued == sorted(issued)
