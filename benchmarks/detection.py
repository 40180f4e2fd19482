"""Detection benchmark: false alarms and delays of missionwatch's detectors beside
their peers, on seeded simulated missions. Writes the "Detection" section of
benchmarks/RESULTS.md.

    python benchmarks/detection.py                # full: 1,000 missions per setting
    python benchmarks/detection.py --smoke        # the quick version `make test` runs

Every figure comes from the detector classes the monitor runs (FairnessDelta,
BernoulliECusum, MixShift); peers are the naive repeated z-test, River's ADWIN
and PageHinkley, an oracle CUSUM that knows the true rates (the floor), and the
"never alarm" and "periodic alarm" baselines. Peers are tuned to the same
measured false-alarm rate as the detector they are compared with.

Fairness settings feed each cohort's observations in blocks of BLOCK receipts
(`FairnessDelta.update_block`, one look per block), the way the monitor judges
a cohort at most once per update; delays are therefore multiples of BLOCK.
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats as sps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # as a script: the repository root

from benchmarks.results import write_section

from benchmarks import traffic
from missionwatch.detect.fairness import FairnessDelta
from missionwatch.detect.shift import FollowupPressure, MixShift
from missionwatch.spec import FairnessRule
from missionwatch.stats.cs import wilson_upper
from missionwatch.stats.dispersion import LAGS, Dispersion
from missionwatch.stats.edetect import BernoulliECusum, CategoricalECusum

ROOT = Path(__file__).resolve().parents[1]
BLOCK = 50
HORIZON = 20_000


# ----------------------------------------------------------------- reporting
def clopper_pearson(k: int, n: int, conf: float = 0.95) -> tuple[float, float]:
    a = 1 - conf
    lo = 0.0 if k == 0 else float(sps.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(sps.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


@dataclass
class Result:
    setting: str
    detector: str
    missions: int
    alarms: list[int | None]
    """Per mission: receipts (since the change, or since the start on a null) to the first alarm."""
    receipts: int
    """Receipts watched in total (for false alarms per 10k)."""
    false_alarms: int
    """Alarm episodes on null settings (restarting after each)."""
    null: bool
    us_per_update: float = math.nan
    notes: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def any_alarm(self) -> int:
        return sum(a is not None for a in self.alarms)

    def row(self) -> str:
        n = self.missions
        k = self.any_alarm
        lo, hi = clopper_pearson(k, n)
        fa10k = 1e4 * self.false_alarms / self.receipts if self.receipts else math.nan
        arl0 = self.receipts / self.false_alarms if self.false_alarms else math.inf
        hits = sorted(a for a in self.alarms if a is not None)
        if self.null:
            p = f"{k / n:.3f} [{lo:.3f}, {hi:.3f}]"
            delay = p90 = miss = "-"
        else:
            p = "-"
            delay = f"{statistics.median(hits):,.0f}" if hits else "-"
            p90 = f"{hits[int(0.9 * (len(hits) - 1))]:,.0f}" if hits else "-"
            miss = f"{1 - k / n:.3f}"
        arl = "> " + f"{self.receipts:,}" if math.isinf(arl0) else f"{arl0:,.0f}"
        us = f"{self.us_per_update:.1f}" if math.isfinite(self.us_per_update) else "-"
        return (f"| {self.setting} | {self.detector} | {n} | {p} | "
                f"{fa10k:.3f} | {arl if self.null else '-'} | {delay} | {p90} | {miss} | {us} | {self.notes} |")


HEADER = ("| setting | detector | missions | P(any false alarm) [95% CP] | false alarms / 10k | ARL0 "
          "| median delay | p90 delay | miss rate | us / update | notes |\n"
          "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")


# ----------------------------------------------------------------- fairness
@dataclass(frozen=True)
class FairSetting:
    name: str
    rate_a: Callable[[np.ndarray], np.ndarray]
    rate_b: Callable[[np.ndarray], np.ndarray]
    share_b: float = 0.5
    change_at: int = 0
    null: bool = True
    heavy: bool = False
    delay_mean: float = 0.0


def _const(p: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: np.full(t.shape, p)


def _step(p0: float, p1: float, at: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: np.where(t >= at, p1, p0)


def _ramp(p0: float, p1: float, over: int) -> Callable[[np.ndarray], np.ndarray]:
    return lambda t: p0 + (p1 - p0) * np.minimum(t / over, 1.0)


FAIR_SETTINGS = [
    FairSetting("fair, 0.10 both", _const(0.10), _const(0.10)),
    FairSetting("fair, base rate drifting 0.05 -> 0.25 for all", _ramp(0.05, 0.25, HORIZON),
                _ramp(0.05, 0.25, HORIZON)),
    FairSetting("fair, 10/90 cohorts", _const(0.10), _const(0.10), share_b=0.1),
    FairSetting("fair, heavy-tailed amounts (lognormal sigma 1.5)", _const(0.0), _const(0.0), heavy=True),
    FairSetting("fair, outcomes delayed (mean 2,000 receipts)", _const(0.10), _const(0.10), delay_mean=2000),
    FairSetting("gap 0.10 vs 0.13 from the start", _const(0.10), _const(0.13), null=False),
    FairSetting("abrupt gap 0.10 -> 0.13 at 5,000", _const(0.10), _step(0.10, 0.13, 5000), change_at=5000,
                null=False),
    FairSetting("gradual gap 0.10 -> 0.16 over 20,000", _const(0.10), _ramp(0.10, 0.16, HORIZON), null=False),
    FairSetting("small gap 0.10 vs 0.11", _const(0.10), _const(0.11), null=False),
    FairSetting("gap 0.10 vs 0.13, 10/90 cohorts", _const(0.10), _const(0.13), share_b=0.1, null=False),
    FairSetting("gap 0.10 vs 0.13, outcomes delayed (mean 2,000)", _const(0.10), _const(0.13),
                delay_mean=2000, null=False),
]

RULE = FairnessRule(metric="rate", harm="both", max_gap=0.005)
ALPHA = 0.05


def _fair_blocks(s: FairSetting, rng: np.random.Generator, missions: int) -> np.ndarray:
    """Per mission, per block, per cohort: (n, sum, sum of squares) observed by the end of the block."""
    t = np.arange(HORIZON)
    nb = HORIZON // BLOCK
    out = np.zeros((missions, nb, 2, 3))
    for m in range(missions):
        is_b = rng.random(HORIZON) < s.share_b
        if s.heavy:
            x = rng.lognormal(0.0, 1.5, HORIZON)
        else:
            p = np.where(is_b, s.rate_b(t), s.rate_a(t))
            x = (rng.random(HORIZON) < p).astype(float)
        seen = t + (rng.geometric(1 / s.delay_mean, HORIZON) if s.delay_mean else 0)
        block = seen // BLOCK
        keep = block < nb
        idx = (block[keep] * 2 + is_b[keep]).astype(np.int64)
        xs = x[keep]
        for j, w in enumerate((np.ones_like(xs), xs, xs * xs)):
            out[m, :, :, j] = np.bincount(idx, weights=w, minlength=nb * 2).reshape(nb, 2)
    return out


def run_fairness(s: FairSetting, missions: int, seed: int) -> list[Result]:
    rng = np.random.default_rng(seed)
    blocks = _fair_blocks(s, rng, missions)
    ours: list[int | None] = []
    naive: list[int | None] = []
    updates = 0
    spent = 0.0
    for m in range(missions):
        # a spec with one rule, one proxy and two cohorts: alpha / (1 x 1 x 2 x 1), as the monitor splits it
        fd = FairnessDelta(RULE, "group", ALPHA / 2, min_samples=30, max_cohorts=2)
        first: int | None = None
        t0 = time.perf_counter()
        for b in range(blocks.shape[1]):
            for c, name in ((0, "a"), (1, "b")):
                n, total, sumsq = blocks[m, b, c]
                if n:
                    fd.update_block(name, int(n), float(total), float(sumsq))
                    updates += int(n)
            if first is None:
                for name in ("a", "b"):
                    if name in fd.cohorts and fd.evaluate(name).verdict == "beyond":
                        first = (b + 1) * BLOCK
                        break
            if first is not None:
                break
        spent += time.perf_counter() - t0
        ours.append(None if first is None else max(first - s.change_at, 0))
        naive.append(_naive_z(blocks[m], s.change_at))
    watched = missions * (HORIZON - s.change_at)
    res = [Result(s.name, "fairness delta (missionwatch)", missions, ours, watched,
                  sum(a is not None for a in ours) if s.null else 0, s.null, 1e6 * spent / max(updates, 1))]
    res.append(Result(s.name, "naive z-test, alpha 0.05 at each look", missions, naive, watched,
                      sum(a is not None for a in naive) if s.null else 0, s.null))
    return res


def _naive_z(blocks: np.ndarray, change_at: int) -> int | None:
    cum = blocks.cumsum(axis=0)
    n_a, s_a, q_a = cum[:, 0, 0], cum[:, 0, 1], cum[:, 0, 2]
    n_b, s_b, q_b = cum[:, 1, 0], cum[:, 1, 1], cum[:, 1, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        ma, mb = s_a / n_a, s_b / n_b
        va, vb = q_a / n_a - ma**2, q_b / n_b - mb**2
        z = (mb - ma) / np.sqrt(va / n_a + vb / n_b)
    ok = (n_a >= 30) & (n_b >= 30) & np.isfinite(z)
    hits = np.flatnonzero(ok & (np.abs(z) > 1.959964))
    return None if not len(hits) else max(int(hits[0] + 1) * BLOCK - change_at, 0)


# ------------------------------------------------------------ strict mode
STRICT_NULL_HORIZON = 4_000
STRICT_SETTINGS = [  # (setting, receipts per mission, share of the missions run)
    (FairSetting("fair, rare event 0.02 both, 5/95 cohorts, 4,000 receipts", _const(0.02), _const(0.02),
                 share_b=0.05), STRICT_NULL_HORIZON, 1.0),
    (FairSetting("gap 0.10 vs 0.13 from the start", _const(0.10), _const(0.13), null=False), HORIZON, 0.3),
]


def run_strict(s: FairSetting, missions: int, seed: int, horizon: int = HORIZON) -> list[Result]:
    """Asymptotic and strict (betting) intervals on the same missions, fed observation by
    observation in arrival order (`FairnessDelta.update_many` per cohort within each look)."""
    rng = np.random.default_rng(seed)
    t = np.arange(horizon)
    alarms: dict[bool, list[int | None]] = {False: [], True: []}
    spent = {False: 0.0, True: 0.0}
    updates = {False: 0, True: 0}
    for _ in range(missions):
        is_b = rng.random(horizon) < s.share_b
        x = (rng.random(horizon) < np.where(is_b, s.rate_b(t), s.rate_a(t))).astype(float)
        for strict in (False, True):
            fd = FairnessDelta(RULE, "group", ALPHA / 2, min_samples=30, max_cohorts=2, strict=strict)
            first: int | None = None
            t0 = time.perf_counter()
            for start in range(0, horizon, BLOCK):
                xs, bs = x[start:start + BLOCK], is_b[start:start + BLOCK]
                for name, sel in (("a", ~bs), ("b", bs)):
                    if sel.any():
                        fd.update_many(name, xs[sel])
                updates[strict] += len(xs)
                if any(fd.evaluate(n).verdict == "beyond" for n in ("a", "b") if n in fd.cohorts):
                    first = start + BLOCK
                    break
            spent[strict] += time.perf_counter() - t0
            alarms[strict].append(first)
    watched = missions * horizon
    return [Result(s.name, f"fairness delta, {'strict' if strict else 'asymptotic'} intervals", missions,
                   alarms[strict], watched, sum(a is not None for a in alarms[strict]) if s.null else 0, s.null,
                   1e6 * spent[strict] / max(updates[strict], 1)) for strict in (False, True)]


# ----------------------------------------------------------- rate change
BASELINE = 5_000
P0, P1 = 0.10, 0.15
RISES = (1.3, 1.6, 2.0)


def _streams(rng: np.random.Generator, missions: int, p: float, n: int) -> np.ndarray:
    return rng.random((missions, n)) < p


def _ours_alarms(base_k: np.ndarray, xs: np.ndarray, alpha: float, restart: bool) -> tuple[list[int | None], int]:
    """First alarm per mission and, restarting after each alarm, the number of alarms."""
    first: list[int | None] = []
    count = 0
    for k0, x in zip(base_k, xs, strict=True):
        det = BernoulliECusum(wilson_upper(int(k0), BASELINE), RISES, alpha)
        pos, f = 0, None
        while pos < len(x):
            hit = det.update_many(x[pos:])
            if hit is None:
                break
            count += 1
            f = pos + hit + 1 if f is None else f
            if not restart:
                break
            pos += hit + 1
            det.reset()
        first.append(f)
    return first, count


def _oracle_llr(x: np.ndarray) -> np.ndarray:
    return np.where(x, math.log(P1 / P0), math.log((1 - P1) / (1 - P0)))


def _cusum_alarms(x: np.ndarray, h: float, restart: bool) -> tuple[int | None, int]:
    """Oracle log-likelihood-ratio CUSUM W = max(0, W + llr), alarm when W > h."""
    llr = _oracle_llr(x)
    pos, first, count = 0, None, 0
    while pos < len(x):
        c = np.cumsum(llr[pos:])
        w = c - np.minimum.accumulate(np.minimum(c, 0.0))
        hits = np.flatnonzero(w > h)
        if not len(hits):
            break
        count += 1
        first = pos + int(hits[0]) + 1 if first is None else first
        if not restart:
            break
        pos += int(hits[0]) + 1
    return first, count


def _tune(rate_of: Callable[[float], float], target: float, lo: float, hi: float, *, log: bool,
          decreasing: bool, steps: int) -> float:
    """Bisect a detector's setting so its measured false-alarm rate comes closest to target
    (from below: the peer never gets more false alarms than the detector it is compared with)."""
    for _ in range(steps):
        mid = math.sqrt(lo * hi) if log else (lo + hi) / 2
        too_many = rate_of(mid) > target
        # decreasing: a larger setting gives fewer alarms
        if too_many == decreasing:
            lo = mid
        else:
            hi = mid
    return hi if decreasing else lo


def _river_alarms(make: Callable[[], object], x: np.ndarray, restart: bool) -> tuple[int | None, int]:
    det = make()
    first, count = None, 0
    for i, v in enumerate(x.tolist()):
        det.update(float(v))  # type: ignore[attr-defined]
        if det.drift_detected:  # type: ignore[attr-defined]
            count += 1
            first = i + 1 if first is None else first
            if not restart:
                break
            det = make()
    return first, count


def run_rate_change(missions: int, seed: int, alpha: float, calib_missions: int,
                    peers: bool) -> list[Result]:
    rng = np.random.default_rng(seed)
    name = f"rate 0.10 -> 0.15, alpha {alpha:g}"
    base_k = rng.binomial(BASELINE, P0, missions)
    null = _streams(rng, missions, P0, HORIZON)
    alt = _streams(rng, missions, P1, HORIZON)
    t0 = time.perf_counter()
    _, fa = _ours_alarms(base_k, null, alpha, restart=True)
    us = 1e6 * (time.perf_counter() - t0) / null.size
    first_null, _ = _ours_alarms(base_k, null, alpha, restart=False)
    delays, _ = _ours_alarms(base_k, alt, alpha, restart=False)
    watched = missions * HORIZON
    out = [Result(name + " (null)", "e-CUSUM (missionwatch)", missions, first_null, watched, fa, True, us),
           Result(name, "e-CUSUM (missionwatch)", missions, delays, watched, 0, False, us)]
    target = fa / watched
    out_extra = {"target": target}

    # the oracle CUSUM, tuned to the same measured false-alarm rate on the same null streams
    calib = null[:calib_missions]

    def oracle_rate(h: float) -> float:
        return sum(_cusum_alarms(x, h, True)[1] for x in calib) / calib.size

    h = _tune(oracle_rate, target, 0.5, 40.0, log=False, decreasing=True, steps=14)
    o_null = [_cusum_alarms(x, h, True) for x in null]
    o_alt = [_cusum_alarms(x, h, False)[0] for x in alt]
    out.append(Result(name + " (null)", f"oracle CUSUM (true p0, p1; h={h:.2f})", missions,
                      [a for a, _ in o_null], watched, sum(c for _, c in o_null), True))
    out.append(Result(name, f"oracle CUSUM (true p0, p1; h={h:.2f})", missions, o_alt, watched, 0, False))
    # never / periodic
    out.append(Result(name, "never alarm", missions, [None] * missions, watched, 0, False))
    period = 1000
    out.append(Result(name + " (null)", f"periodic alarm every {period:,}", missions, [period] * missions,
                      watched, watched // period, True))
    out.append(Result(name, f"periodic alarm every {period:,}", missions, [period // 2] * missions,
                      watched, 0, False, notes="delay: the mean wait for the next tick"))
    if peers:
        out.extend(_river_peers(name, null, alt, target, calib_missions))
    for r in out:
        r.extra.update(out_extra)
    return out


def _river_peers(name: str, null: np.ndarray, alt: np.ndarray, target: float, calib_missions: int) -> list[Result]:
    from river import drift

    calib = null[:calib_missions]
    missions = len(null)
    watched = null.size
    out = []
    for label, make_for, lo, hi in (
        ("ADWIN", lambda d: (lambda: drift.ADWIN(delta=d)), 1e-12, 0.5),
        ("PageHinkley", lambda th: (lambda: drift.PageHinkley(threshold=th, mode="up")), 1.0, 500.0),
    ):
        def rate(v: float, make_for: Callable[[float], Callable[[], object]] = make_for) -> float:
            return sum(_river_alarms(make_for(v), x, True)[1] for x in calib) / calib.size

        decreasing = label == "PageHinkley"  # ADWIN: a larger delta alarms more
        v = _tune(rate, target, lo, hi, log=True, decreasing=decreasing, steps=10)
        make = make_for(v)
        t0 = time.perf_counter()
        n_null = [_river_alarms(make, x, True) for x in calib]
        us = 1e6 * (time.perf_counter() - t0) / calib.size
        d_alt = [_river_alarms(make, x, False)[0] for x in alt]
        setting = f"delta={v:.3g}" if label == "ADWIN" else f"threshold={v:.3g}"
        out.append(Result(name + " (null)", f"River {label} ({setting})", len(calib), [a for a, _ in n_null],
                          calib.size, sum(c for _, c in n_null), True, us,
                          notes=f"null measured on {len(calib)} missions"))
        out.append(Result(name, f"River {label} ({setting})", missions, d_alt, watched, 0, False, us))
    return out


# ---------------------------------------------------------------- tactic mix
SHARES = {"email": 0.40, "call": 0.30, "discount": 0.15, "refund": 0.10, "winback": 0.05}
MIX_BASELINE = 2_000


def run_mix(missions: int, seed: int, alpha: float, horizon: int) -> list[Result]:
    rng = np.random.default_rng(seed)
    cats = list(SHARES)
    p_null = np.array(list(SHARES.values()))
    p_alt = p_null * (1 - 0.13) / (1 - 0.05)
    p_alt[cats.index("winback")] = 0.13
    name = f"tactic mix: winback 5% -> 13%, alpha {alpha:g}"
    results = []
    for label, p in (("null", p_null), ("change", p_alt)):
        null = label == "null"
        found: dict[str, list[int | None]] = {"mix": [], "dirichlet": []}
        alarms = {"mix": 0, "dirichlet": 0}
        spent = {"mix": 0.0, "dirichlet": 0.0}
        updates = {"mix": 0, "dirichlet": 0}
        for _ in range(missions):
            base = [cats[v] for v in rng.choice(len(cats), MIX_BASELINE, p=p_null)]
            seq = [cats[v] for v in rng.choice(len(cats), horizon, p=p)]
            mix = MixShift("action_type", alpha, (1.5, 2.0, 3.0))
            for v in base:
                mix.update(v)
            mix.freeze()
            counts = {c: base.count(c) for c in cats}
            dirichlet = CategoricalECusum(counts, alpha)
            for key, step, rearm in (
                ("mix", lambda v, m=mix: m.update(v).event is not None, mix.rearm),
                ("dirichlet", lambda v, d=dirichlet: d.update(v).alarm, dirichlet.reset),
            ):
                f = None
                t0 = time.perf_counter()
                for i, v in enumerate(seq):
                    updates[key] += 1
                    if step(v):
                        alarms[key] += 1
                        f = i + 1 if f is None else f
                        if not null:
                            break
                        rearm()  # restart on the same baseline
                spent[key] += time.perf_counter() - t0
                found[key].append(f)
        for key, label_ in (("mix", "mix e-CUSUM per tactic (missionwatch)"),
                            ("dirichlet", "categorical Dirichlet e-CUSUM (stats, not used)")):
            results.append(Result(name + (" (null)" if null else ""), label_, missions, found[key],
                                  missions * horizon, alarms[key] if null else 0, null,
                                  1e6 * spent[key] / max(updates[key], 1)))
    return results


# ------------------------------------------------------------- dependence
DEP_ALPHA = 1e-5
DEP_CHANGE_AT = 5_000
"""Actions after the baseline at which a planted change begins."""
DEP_HORIZON = HORIZON
CHANGES = {"template": "template 4: 10% -> 20%", "followup": "follow-ups: 15% -> 30%"}


def _shift_run(tr: traffic.Traffic, dependent: bool, change_at: int | None) -> tuple[dict[str, int | None], dict[str, int]]:
    """Feed one mission's actions (baseline, then DEP_HORIZON more) to the template mix and the
    mission-wide follow-up detector, as the monitor does (tempered by each stream's design effect,
    or, `dependent` False, as if every action were independent). Returns each detector's first alarm
    at or after `change_at` (actions after the baseline; on a null, any alarm) and its alarm
    count, rearming on the same baseline after each alarm before the change."""
    # the peer: the same detectors with the design effect fixed at 1 (lags 0, no dispersion)
    mix = MixShift("template", DEP_ALPHA, (1.5, 2.0, 3.0), lags=LAGS if dependent else 0)
    fu = FollowupPressure("*", (1.5, 2.0, 3.0), DEP_ALPHA, Dispersion() if dependent else None)
    first: dict[str, int | None] = {"mix": None, "followup": None}
    alarms = {"mix": 0, "followup": 0}
    tpl = [str(v) for v in tr.template.tolist()]
    fus = tr.followup.tolist()
    for i, (v, f) in enumerate(zip(tpl, fus, strict=True)):
        if i == MIX_BASELINE:
            mix.freeze()
            fu.freeze()
        t = i - MIX_BASELINE
        for key, det in (("mix", mix), ("followup", fu)):
            if change_at is not None and first[key] is not None:
                continue  # found: a change run stops there; a null run counts on
            event = det.update(v).event if key == "mix" else det.update(f, float(i)).event
            if event is None:
                continue
            alarms[key] += 1
            if first[key] is None and (change_at is None or t >= change_at):
                first[key] = t - (change_at or 0) + 1
            det.rearm()
        if fu.dispersion is not None:
            fu.dispersion.add("followup" if f else "other")
        if change_at is not None and all(v is not None for v in first.values()):
            break
    return first, alarms


def run_dependence(scenario: str, change: str | None, missions: int, seed: int, peer: bool = True) -> list[Result]:
    """One scenario (null, or with `change` planted) on `missions` missions: ours, and with
    `peer` the same detectors assuming independent actions, on the same traffic."""
    rng = np.random.default_rng(seed)
    kinds = (True, False) if peer else (True,)
    n = MIX_BASELINE + DEP_HORIZON
    found: dict[tuple[str, bool], list[int | None]] = {(k, u): [] for k in ("mix", "followup") for u in (True, False)}
    alarms = {(k, u): 0 for k in ("mix", "followup") for u in (True, False)}
    for _ in range(missions):
        at = None if change is None else MIX_BASELINE + DEP_CHANGE_AT
        tr = traffic.generate(scenario, n, rng, change, at)
        for dependent in kinds:
            first, count = _shift_run(tr, dependent, None if change is None else DEP_CHANGE_AT)
            for k in ("mix", "followup"):
                found[(k, dependent)].append(first[k])
                alarms[(k, dependent)] += count[k] if change is None else 0
    null = change is None
    name = f"{scenario}: " + ("fair (null)" if null else CHANGES[change])
    keys = ["mix", "followup"] if null else ["mix" if change == "template" else "followup"]
    watched = missions * (DEP_HORIZON if null else DEP_HORIZON - DEP_CHANGE_AT)
    out = []
    for k in keys:
        label = "template mix" if k == "mix" else "follow-up pressure (*)"
        for dependent in kinds:
            who = "missionwatch, tempered by the design effect" if dependent else "e-CUSUM assuming independent actions"
            out.append(Result(name, f"{label}: {who}", missions, found[(k, dependent)], watched,
                              alarms[(k, dependent)], null))
    return out


# ------------------------------------------------------------------- driver
def run(missions: int, seed: int, peers: bool, calib: int, mix_horizon: int,
        progress: Callable[[str], None] = print, dep_missions: int = 0) -> list[Result]:
    results: list[Result] = []
    for i, scenario in enumerate(traffic.SCENARIOS if dep_missions else ()):
        for j, change in enumerate((None, "template", "followup")):
            progress(f"dependence: {scenario}, {change or 'fair'}")
            results.extend(run_dependence(scenario, change, dep_missions, seed + 300 + 10 * i + j))
    for i, s in enumerate(FAIR_SETTINGS):
        progress(f"fairness: {s.name}")
        results.extend(run_fairness(s, missions, seed + i))
    for i, (s, horizon, share) in enumerate(STRICT_SETTINGS):
        progress(f"strict mode: {s.name}")
        results.extend(run_strict(s, max(int(missions * share), 10), seed + 50 + i, horizon))
    for alpha in (1e-3, 1e-5):
        progress(f"rate change at alpha {alpha:g}")
        results.extend(run_rate_change(missions, seed + 100, alpha, calib, peers and alpha == 1e-3))
    progress("tactic mix")
    results.extend(run_mix(missions, seed + 200, 1e-5, mix_horizon))
    return results


def find(results: Iterable[Result], setting: str, detector: str) -> Result:
    for r in results:
        if r.setting == setting and r.detector.startswith(detector):
            return r
    raise KeyError((setting, detector))


def median_delay(r: Result) -> float:
    hits = [a for a in r.alarms if a is not None]
    return statistics.median(hits) if hits else math.inf


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--missions", type=int, default=1000, help="missions per setting (default 1000)")
    ap.add_argument("--seed", type=int, default=20261124)
    ap.add_argument("--smoke", action="store_true", help="100 missions, no River peers; does not write RESULTS.md")
    ap.add_argument("--no-peers", action="store_true", help="skip River's detectors (slow to tune)")
    ap.add_argument("--dependent-missions", type=int, default=200,
                    help="missions per dependence scenario and change (default 200, about 40 minutes on "
                         "one core; smoke: 4)")
    args = ap.parse_args()
    missions = 100 if args.smoke else args.missions
    dep = 4 if args.smoke else args.dependent_missions
    t0 = time.perf_counter()
    results = run(missions, args.seed, peers=not (args.smoke or args.no_peers), calib=min(missions, 300),
                  mix_horizon=HORIZON, progress=lambda m: print(f"[{time.perf_counter() - t0:6.0f}s] {m}",
                                                                 flush=True), dep_missions=dep)
    table = "\n".join([HEADER, *(r.row() for r in results)])
    section = f"""## Detection

`python benchmarks/detection.py --missions {missions} --seed {args.seed}` on {platform.machine()},
Python {platform.python_version()}: {missions} seeded missions per setting, {HORIZON:,} receipts each
(after a frozen baseline where there is one), {time.perf_counter() - t0:,.0f} s in all.

Fairness: one rule (harm both, max_gap {RULE.max_gap}), two cohorts, spec alpha {ALPHA} split over the two
judged cohorts; looks every {BLOCK} receipts; delays in receipts (both cohorts together) after the change.
Rate change: baseline of {BASELINE:,} receipts at 0.10, frozen; e-CUSUM mixed over rises {RISES} against the
baseline's 99.9% Wilson upper bound. Peers tuned on the same null streams to at most the e-CUSUM's measured
false-alarm rate. Tactic mix: {MIX_BASELINE:,}-receipt baseline, shares {SHARES}.
Strict mode: the same fairness rule with the spec's `intervals = "strict"` (betting confidence
sequences) beside the default asymptotic intervals, on the same missions, observations fed one by one;
the rare-event setting is where the asymptotic guarantee is weakest (a 5% cohort with a 2% rate has
about 4 events in its first 4,000 receipts). The strict gap setting runs on 30% of the missions
(the betting sequences cost about 25 us per observation).
Dependence (benchmarks/traffic.py; {dep} missions per scenario and change, {MIX_BASELINE:,}-action baseline,
then {DEP_HORIZON:,} actions, changes planted {DEP_CHANGE_AT:,} actions after the baseline; alpha {DEP_ALPHA:g}):
the shift detectors as the monitor runs them (tempered by the stream's design effect) beside the same
detectors assuming independent actions (design effect fixed at 1, what they did before).

{table}
"""
    print(section)
    if not args.smoke:
        write_section("Detection", section)


if __name__ == "__main__":
    main()
