"""Fairness delta: the same numbers as Fairlearn and Aequitas on the same data, and
the verdicts it promises."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from missionwatch.detect.fairness import FairnessDelta, disparity
from missionwatch.spec import FairnessRule

# cohort A selects 40 of 100, B 10 of 50, C 2 of 20
GROUPS = ["A"] * 100 + ["B"] * 50 + ["C"] * 20
SELECTED = [1] * 40 + [0] * 60 + [1] * 10 + [0] * 40 + [1] * 2 + [0] * 18


def _fed(rule: FairnessRule) -> FairnessDelta:
    fd = FairnessDelta(rule, "group", 0.05, min_samples=10, max_cohorts=8)
    for g, y in zip(GROUPS, SELECTED, strict=True):
        fd.update(g, float(y))
    return fd


def test_rates_gaps_and_ratios_equal_fairlearns() -> None:
    from fairlearn.metrics import (
        MetricFrame,
        demographic_parity_difference,
        demographic_parity_ratio,
        selection_rate,
    )

    d = disparity(_fed(FairnessRule(metric="m", harm="lower", max_gap=0.1)).cohorts)
    y_true = [0] * len(SELECTED)
    assert demographic_parity_difference(y_true, SELECTED, sensitive_features=GROUPS) == pytest.approx(0.30)
    assert d.difference == pytest.approx(demographic_parity_difference(y_true, SELECTED, sensitive_features=GROUPS))
    assert d.ratio == pytest.approx(demographic_parity_ratio(y_true, SELECTED, sensitive_features=GROUPS))
    assert d.ratio == pytest.approx(0.25)
    frame = MetricFrame(metrics=selection_rate, y_true=y_true, y_pred=SELECTED, sensitive_features=GROUPS)
    assert d.ratio_to_overall == pytest.approx(frame.ratio(method="to_overall"))
    assert d.ratio_to_overall == pytest.approx(0.326923, abs=1e-6)
    assert d.rates == pytest.approx(frame.by_group.to_dict())


def test_ratio_to_the_largest_group_equals_aequitas() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from aequitas.bias import Bias
        from aequitas.group import Group

        df = pd.DataFrame({"score": SELECTED, "label_value": [0] * len(SELECTED), "group": GROUPS})
        crosstabs, _ = Group().get_crosstabs(df)
        bias = Bias().get_disparity_major_group(crosstabs, original_df=df, mask_significance=False)
    theirs = dict(zip(bias["attribute_value"], bias["pprev_disparity"], strict=True))
    d = disparity(_fed(FairnessRule(metric="m", harm="lower", max_gap=0.1)).cohorts)
    assert d.largest == "A"
    assert d.ratio_to_largest == pytest.approx(theirs)
    assert d.ratio_to_largest == pytest.approx({"A": 1.0, "B": 0.5, "C": 0.25})


def test_the_detector_reports_the_same_gaps_and_ratios_against_the_largest() -> None:
    fd = _fed(FairnessRule(metric="m", harm="lower", min_ratio=0.8, reference="largest"))
    for cohort, ratio in (("B", 0.5), ("C", 0.25)):
        v = fd.evaluate(cohort)
        assert v.reference == "group=A"
        assert v.ratio == pytest.approx(ratio)
        assert v.gap == pytest.approx(ratio * 0.4 - 0.4)
    assert fd.evaluate("A").verdict == "reference"


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 40), st.floats(0, 1)), min_size=1, max_size=20))
def test_block_updates_equal_single_updates(blocks) -> None:
    rule = FairnessRule(metric="m", harm="both", max_gap=0.05)
    one, many = (FairnessDelta(rule, "g", 0.05, 5, 8) for _ in range(2))
    for cohort, n, x in blocks:
        for _ in range(n):
            one.update(cohort, x)
        many.update_block(cohort, n, n * x, n * x * x)
    for c in one.cohorts:
        a, b = one.evaluate(c), many.evaluate(c)
        assert (a.verdict, a.n, a.reference_n) == (b.verdict, b.n, b.reference_n)
        assert a.estimate == pytest.approx(b.estimate)
        assert a.gap == pytest.approx(b.gap, abs=1e-9, nan_ok=True)


def test_three_verdicts_and_the_minimum_detectable_gap() -> None:
    rng = np.random.default_rng(4)
    rule = FairnessRule(metric="m", harm="lower", max_gap=0.05)

    def run(rate_b: float, n: int) -> FairnessDelta:
        fd = FairnessDelta(rule, "g", 0.05, 30, 4)
        for x in rng.random(n) < 0.5:
            fd.update("a", float(x))
        for x in rng.random(n) < rate_b:
            fd.update("b", float(x))
        return fd

    assert run(0.2, 3000).evaluate("b").verdict == "beyond"
    assert run(0.5, 20000).evaluate("b").verdict == "within"
    small = run(0.45, 200).evaluate("b")
    assert small.verdict == "insufficient"
    assert small.min_detectable_gap > 0.05 + (small.interval[1] - small.interval[0]) / 2 - 1e-9
    big = run(0.45, 5000).evaluate("b")
    assert big.min_detectable_gap < small.min_detectable_gap


@settings(max_examples=60, deadline=None)
@given(st.floats(0.05, 0.6), st.floats(0.05, 0.6), st.integers(40, 3000), st.sampled_from(
    [dict(harm="lower", max_gap=0.05), dict(harm="both", max_gap=0.02), dict(harm="lower", min_ratio=0.8),
     dict(harm="higher", max_ratio=1.25), dict(harm="both", max_gap=0.05, min_ratio=0.8, max_ratio=1.25)]))
def test_e_value_says_beyond_exactly_when_the_verdict_does(pa, pb, n, thresholds) -> None:
    """e-Bonferroni for escalations: e >= 1/alpha iff the interval lies beyond a threshold."""
    rng = np.random.default_rng(n)
    fd = FairnessDelta(FairnessRule(metric="m", **thresholds), "g", 0.01, 30, 4)
    ka = float((rng.random(n) < pa).sum())
    fd.update_block("a", n, ka, ka)  # 0/1 observations: the sum of squares is the sum
    k = float((rng.random(n) < pb).sum())
    fd.update_block("b", n, k, k)
    for c in ("a", "b"):
        v = fd.evaluate(c)
        assert (v.e_value >= 1 / 0.01) == (v.verdict == "beyond"), (v, thresholds)


STRICT_RULES = [dict(harm="lower", max_gap=0.05), dict(harm="both", max_gap=0.02), dict(harm="lower", min_ratio=0.8),
                dict(harm="higher", max_ratio=1.25), dict(harm="both", max_gap=0.05, min_ratio=0.8, max_ratio=1.25)]


@settings(max_examples=25, deadline=None)
@given(st.floats(0.05, 0.6), st.floats(0.05, 0.6), st.integers(40, 1500), st.sampled_from(STRICT_RULES),
       st.sampled_from(["rest", "largest", "b"]))
def test_strict_e_value_says_beyond_exactly_when_the_verdict_does(pa, pb, n, thresholds, reference) -> None:
    rng = np.random.default_rng(n)
    fd = FairnessDelta(FairnessRule(metric="m", reference=reference, **thresholds), "g", 0.01, 30, 4, strict=True)
    for c, x in zip(rng.choice(["a", "b", "c"], 2 * n, p=[0.45, 0.45, 0.1]), rng.random(2 * n), strict=True):
        fd.update(c, float(x < {"a": pa, "b": pb, "c": pb}[c]))
    for c in ("a", "b", "c"):
        v = fd.evaluate(c)
        assert (v.e_value >= 1 / 0.01) == (v.verdict == "beyond"), (v, thresholds)


def test_strict_reference_streams_hold_exactly_the_other_cohorts_observations() -> None:
    """The 'rest' of a cohort that appears late starts from everything seen before it,
    then takes every observation but its own, in arrival order: its capital equals a
    sequence fed those observations directly. Blocks equal single updates."""
    from missionwatch.stats.betting import BettingCS

    rng = np.random.default_rng(9)
    labels = ["a"] * 50 + list(rng.choice(["a", "b", "c"], 600))
    xs = (rng.random(len(labels)) < 0.3).astype(float)
    rule = FairnessRule(metric="m", harm="both", max_gap=0.05)
    one = FairnessDelta(rule, "g", 0.05, 10, 8, strict=True)
    many = FairnessDelta(rule, "g", 0.05, 10, 8, strict=True)
    for c, x in zip(labels, xs, strict=True):
        one.update(str(c), float(x))
    runs: list[tuple[str, list[float]]] = []
    for c, x in zip(labels, xs, strict=True):
        if runs and runs[-1][0] == c:
            runs[-1][1].append(float(x))
        else:
            runs.append((str(c), [float(x)]))
    for c, block in runs:
        many.update_many(c, np.asarray(block))
    assert one._bets is not None and many._bets is not None
    for cohort in ("a", "b", "c"):
        direct = BettingCS(one._bets.rest[cohort].alpha)
        direct.update_many(np.asarray([x for c, x in zip(labels, xs, strict=True) if c != cohort]))
        np.testing.assert_allclose(one._bets.rest[cohort].log_plus, direct.log_plus, atol=1e-9)
        np.testing.assert_allclose(many._bets.rest[cohort].log_minus, direct.log_minus, atol=1e-9)
        assert one.evaluate(cohort) == many.evaluate(cohort)


def test_strict_verdicts_and_what_strict_refuses() -> None:
    rng = np.random.default_rng(4)
    rule = FairnessRule(metric="m", harm="lower", max_gap=0.05)

    def run(rate_b: float, n: int) -> FairnessDelta:
        fd = FairnessDelta(rule, "g", 0.05, 30, 4, strict=True)
        fd.update_many("a", (rng.random(n) < 0.5).astype(float))
        fd.update_many("b", (rng.random(n) < rate_b).astype(float))
        return fd

    assert run(0.2, 3000).evaluate("b").verdict == "beyond"
    assert run(0.5, 30000).evaluate("b").verdict == "within"
    assert run(0.45, 200).evaluate("b").verdict == "insufficient"
    fd = run(0.3, 100)
    before = fd.evaluate("b")
    for bad in (lambda: fd.update("b", 0.5), lambda: fd.update("b", 1.0, prev=0.0),
                lambda: fd.update_block("b", 3, 1.0, 1.0), lambda: fd.update_many("b", np.array([1.0, 2.0]))):
        with pytest.raises(ValueError, match="strict intervals"):
            bad()
    assert fd.evaluate("b") == before  # nothing was taken
