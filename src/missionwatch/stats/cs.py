"""Time-uniform confidence sequences for means and for linear combinations of
independent means.

Boundary: the two-sided normal mixture of Howard, Ramdas, McAuliffe and Sekhon
(2021, eq. 3.7), with the variance replaced by a running estimate as in the
asymptotic confidence sequences of Waudby-Smith et al. (2021). For a mean of n
observations with variance s2, the half-width is

    sqrt( v * (1 + t0/n) * log((1 + n/t0) / alpha**2) ),  v = s2 / n,

where t0 is the sample size the mixture is tuned for. Guarantee (asymptotic):
the chance that the true mean ever leaves the interval, over all n at once,
is at most alpha. Observations are independent; a difference of two cohorts
uses disjoint samples, so the variances add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from .base import Detector
from .floats import one

__all__ = [
    "MSPRT",
    "MeanStat",
    "RatioStat",
    "e_bh",
    "linear_cs",
    "linear_e_value",
    "mean_cs",
    "normal_mixture_e_value",
    "normal_mixture_halfwidth",
    "wilson_upper",
]

DEFAULT_T0 = 500.0


@dataclass(slots=True)
class MeanStat:
    """Exact running count, sum and sum of squares; mergeable and revisable."""

    n: int = 0
    total: float = 0.0
    sumsq: float = 0.0

    def update(self, x: float) -> MeanStat:
        self.n += 1
        if x:  # adding 0 keeps the float object: no new one (most observations are 0)
            self.total = one(self.total + x)  # whole-numbered sums share their objects (stats/floats.py)
            self.sumsq = one(self.sumsq + x * x)
        return self

    def revise(self, old: float, new: float) -> MeanStat:
        """Replace one earlier observation `old` by `new` (a per-subject count that grew)."""
        if new != old:
            self.total = one(self.total + (new - old))
            self.sumsq = one(self.sumsq + (new * new - old * old))
        return self

    def merge(self, other: MeanStat) -> MeanStat:
        return MeanStat(self.n + other.n, self.total + other.total, self.sumsq + other.sumsq)

    def minus(self, other: MeanStat) -> MeanStat:
        return MeanStat(self.n - other.n, self.total - other.total, self.sumsq - other.sumsq)

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else math.nan

    @property
    def var(self) -> float:
        """Population variance of the observations (0 for fewer than two)."""
        if self.n < 2:
            return 0.0
        m = self.total / self.n
        return max(self.sumsq / self.n - m * m, 0.0)


@dataclass(slots=True)
class RatioStat:
    """A ratio of sums over independent clusters, sum(x) / sum(k): outcomes per action when
    the independent unit is a cluster of k actions with x outcomes between them.

    `as_mean()` gives the MeanStat of n pseudo-observations u_i = (x_i - r k_i) / kbar + r,
    whose mean is r and whose variance over n is the linearised (sandwich) variance of r,
    sum((x_i - r k_i)^2) / K^2: the confidence sequences above then apply unchanged, with
    clusters, not actions, as the sample size."""

    n: int = 0
    x: float = 0.0
    k: float = 0
    xx: float = 0.0
    xk: float = 0.0
    kk: float = 0
    """k and kk start as ints: cluster sizes are counts, so they stay small ints (no float object each)."""

    def update(self, x: float, k: float) -> RatioStat:
        self.n += 1
        self.x += x
        self.k += k
        self.xx += x * x
        self.xk += x * k
        self.kk += k * k
        return self

    def grow(self, x: float, before: tuple[float, int] | None = None) -> RatioStat:
        """One more observation x of a cluster that held `before` = (sum, count) until now
        (None or a count of 0: a new cluster)."""
        s, k = before or (0.0, 0)
        return self.change((s, k), (s + x, k + 1))

    def add(self, x: float, prev: float | None = None, before: tuple[float, int] | None = None) -> RatioStat:
        """x as a new observation (`prev` None) or as the revision of one from `prev`, of a
        cluster that held `before` = (sum, count) until now (None: a cluster of its own)."""
        if before is None:
            return self.grow(x) if prev is None else self.revise(prev, x)
        s, k = before
        if prev is None:
            return self._move(s, k, s + x, k + 1)
        return self._move(s, k, s + x - prev, k)

    def change(self, before: tuple[float, int], after: tuple[float, int]) -> RatioStat:
        """A cluster's (sum, count) went from `before` to `after` ((0, 0): no cluster yet)."""
        return self._move(*before, *after)

    def _move(self, s: float, k: float, s1: float, k1: float) -> RatioStat:
        """`change` from (s, k) to (s1, k1). A sum that does not change keeps its float object
        (adding 0 would make a new one: most observations are 0)."""
        if k == 0 and s == 0 and (k1 or s1):
            self.n += 1
        if s1 != s:
            self.x = one(self.x + (s1 - s))
            self.xx = one(self.xx + (s1 * s1 - s * s))
        if d := s1 * k1 - s * k:
            self.xk = one(self.xk + d)
        self.k += k1 - k
        self.kk += k1 * k1 - k * k
        return self

    def revise(self, old: float, new: float) -> RatioStat:
        """Replace the sum of a one-observation cluster, `old`, by `new`."""
        self.x += new - old
        self.xx += new * new - old * old
        self.xk += new - old
        return self

    def merge(self, other: RatioStat) -> RatioStat:
        return RatioStat(self.n + other.n, self.x + other.x, self.k + other.k, self.xx + other.xx,
                         self.xk + other.xk, self.kk + other.kk)

    def minus(self, other: RatioStat) -> RatioStat:
        return RatioStat(self.n - other.n, self.x - other.x, self.k - other.k, self.xx - other.xx,
                         self.xk - other.xk, self.kk - other.kk)

    @classmethod
    def singletons(cls, stat: MeanStat) -> RatioStat:
        """Observations that are each their own cluster, as adding them one by one makes it (`add`
        with no `before`: the cluster counts stay ints)."""
        return cls(stat.n, stat.total, stat.n, stat.sumsq, stat.total, stat.n)

    def as_mean(self) -> MeanStat:
        if self.n == 0 or self.k <= 0:
            return MeanStat()
        r, kbar = self.x / self.k, self.k / self.n
        resid = max(self.xx - 2 * r * self.xk + r * r * self.kk, 0.0)
        return MeanStat(self.n, self.n * r, resid / (kbar * kbar) + self.n * r * r)


def normal_mixture_halfwidth(v: float, n_eff: float, alpha: float, t0: float = DEFAULT_T0) -> float:
    """Half-width of the two-sided normal-mixture boundary for an estimator of variance v."""
    if n_eff <= 0:
        return math.inf
    return math.sqrt(v * (1.0 + t0 / n_eff) * math.log((1.0 + n_eff / t0) / (alpha * alpha)))


def normal_mixture_e_value(dev: float, v: float, n_eff: float, t0: float = DEFAULT_T0) -> float:
    """The normal-mixture e-process behind `normal_mixture_halfwidth`: for an estimate `dev`
    away from a hypothesised value, exp(dev^2 / (2 v (1 + t0/n))) / sqrt(1 + n/t0).
    It reaches 1/alpha exactly when the confidence sequence at alpha excludes that value."""
    if n_eff <= 0 or v <= 0:
        return 1.0
    z = dev * dev / (2.0 * v * (1.0 + t0 / n_eff))
    return math.exp(min(z - 0.5 * math.log1p(n_eff / t0), 700.0))


def _shrunk_var(stat: MeanStat, prior_var: float, prior_n: float) -> float:
    return (stat.n * stat.var + prior_n * prior_var) / (stat.n + prior_n)


def mean_cs(
    stat: MeanStat, alpha: float, *, prior_var: float = 0.0, prior_n: float = 0.0, t0: float = DEFAULT_T0
) -> tuple[float, float]:
    """Confidence sequence (lo, hi) for the mean of `stat`."""
    if stat.n == 0:
        return (-math.inf, math.inf)
    s2 = _shrunk_var(stat, prior_var, prior_n)
    hw = normal_mixture_halfwidth(s2 / stat.n, stat.n, alpha, t0)
    return (stat.mean - hw, stat.mean + hw)


def linear_cs(
    a: MeanStat,
    b: MeanStat,
    coef: float,
    alpha: float,
    *,
    prior_var: float = 0.0,
    prior_n: float = 0.0,
    t0: float = DEFAULT_T0,
) -> tuple[float, float, float]:
    """Confidence sequence for mean(a) - coef * mean(b), a and b independent.

    Returns (estimate, lo, hi). Variances are shrunk toward `prior_var` with
    weight `prior_n` pseudo-observations, which keeps a cohort whose first
    observations happen to be equal from getting a zero-width interval.
    """
    if a.n == 0 or b.n == 0:
        return (math.nan, -math.inf, math.inf)
    est, v, n_eff = _linear(a, b, coef, prior_var, prior_n)
    if v <= 0:
        return (est, est, est)
    hw = normal_mixture_halfwidth(v, n_eff, alpha, t0)
    return (est, est - hw, est + hw)


def _linear(a: MeanStat, b: MeanStat, coef: float, prior_var: float, prior_n: float) -> tuple[float, float, float]:
    """Estimate, variance and effective sample size of mean(a) - coef * mean(b)."""
    va = _shrunk_var(a, prior_var, prior_n)
    vb = _shrunk_var(b, prior_var, prior_n) * coef * coef
    v = va / a.n + vb / b.n
    return a.mean - coef * b.mean, v, ((va + vb) / v if v > 0 else 0.0)


def linear_e_value(
    a: MeanStat,
    b: MeanStat,
    coef: float,
    boundary: float,
    direction: int,
    *,
    prior_var: float = 0.0,
    prior_n: float = 0.0,
    t0: float = DEFAULT_T0,
) -> float:
    """e-value against the composite null "mean(a) - coef * mean(b) is not beyond `boundary`"
    (direction +1: not above it; -1: not below it). Its infimum over the null sits at the
    boundary, so the estimate's distance past the boundary is what counts (0 if on the
    null side). `linear_cs` at alpha lies wholly beyond the boundary iff this is >= 1/alpha."""
    if a.n == 0 or b.n == 0:
        return 1.0
    est, v, n_eff = _linear(a, b, coef, prior_var, prior_n)
    if v <= 0:
        return 1.0
    return normal_mixture_e_value(max((est - boundary) * direction, 0.0), v, n_eff, t0)


def e_bh(e_values: dict[str, float], alpha: float, n_tests: int | None = None) -> list[str]:
    """e-BH (Wang and Ramdas 2022): the hypotheses to report at false discovery rate alpha,
    valid under any dependence between the e-values. `n_tests` (default: how many are given)
    counts every hypothesis that could have been tested."""
    k_all = max(n_tests if n_tests is not None else len(e_values), len(e_values), 1)
    ranked = sorted(e_values.items(), key=lambda kv: (-kv[1], kv[0]))
    keep = 0
    for k, (_, e) in enumerate(ranked, 1):
        if e >= k_all / (alpha * k):
            keep = k
    return sorted(name for name, _ in ranked[:keep])


def wilson_upper(k: float, n: float, z: float = 3.09) -> float:
    """Wilson score upper bound of a Bernoulli rate from k successes in n trials
    (z = 3.09: one-sided 99.9%). Change detectors test rises against this, not the
    point estimate, so a baseline that happened to run low does not make an
    unchanged stream look like a rise."""
    if n <= 0:
        return 1.0
    p = k / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z2 / n))


class MSPRT(Detector):
    """Mixture sequential probability ratio test for the difference of two means
    (Johari, Koomen, Pekelis and Walsh 2022, "Always valid inference"), with a
    normal mixing distribution N(theta0, tau2) over the difference.

    With v = var_a / n_a + var_b / n_b and d = mean(a) - mean(b) - theta0,

        Lambda = sqrt(v / (v + tau2)) * exp(tau2 d^2 / (2 v (v + tau2))),

    which for equal samples is the paper's eq. (11). Guarantee: with known
    variances and normal observations, P(Lambda ever >= 1/alpha) <= alpha when the
    true difference is theta0, so `p_value` (the running minimum of 1/Lambda) is an
    always-valid p-value; with running variances (`var_a`/`var_b` None) the
    guarantee holds asymptotically. It is the normal-mixture boundary of this module
    on the effect's own scale: n_eff = tau2 / v with t0 = 1 (equivalently, tau2 =
    (var_a + var_b) / t0 for the module's default parametrisation).
    """

    def __init__(self, tau2: float, theta0: float = 0.0, alpha: float = 0.05,
                 var_a: float | None = None, var_b: float | None = None) -> None:
        if tau2 <= 0:
            raise ValueError(f"tau2 must be positive, got {tau2}")
        self.tau2 = tau2
        self.theta0 = theta0
        self.alpha = alpha
        self.var_a = var_a
        self.var_b = var_b
        self._reset()

    def _reset(self) -> None:
        self.a = MeanStat()
        self.b = MeanStat()
        self.p_value = 1.0

    def update(self, x: float, arm: Literal["a", "b"] = "a", t: float | None = None) -> MSPRT:
        (self.a if arm == "a" else self.b).update(x)
        self.p_value = min(self.p_value, 1.0 / self.e_value)
        return self

    def _v(self) -> float:
        va = self.a.var if self.var_a is None else self.var_a
        vb = self.b.var if self.var_b is None else self.var_b
        return va / self.a.n + vb / self.b.n

    @property
    def e_value(self) -> float:
        """Lambda at the current sample sizes (1 until both arms have an observation)."""
        if self.a.n == 0 or self.b.n == 0:
            return 1.0
        v = self._v()
        if v <= 0:
            return 1.0
        return normal_mixture_e_value(self.a.mean - self.b.mean - self.theta0, v, self.tau2 / v, t0=1.0)

    @property
    def rejected(self) -> bool:
        """Whether the difference has ever been shown to differ from theta0 at alpha."""
        return self.p_value <= self.alpha

    def interval(self, alpha: float | None = None) -> tuple[float, float]:
        """Always-valid confidence interval for the difference: every theta0 with Lambda < 1/alpha."""
        a = self.alpha if alpha is None else alpha
        if self.a.n == 0 or self.b.n == 0:
            return (-math.inf, math.inf)
        v = self._v()
        d = self.a.mean - self.b.mean
        if v <= 0:
            return (d, d)
        hw = normal_mixture_halfwidth(v, self.tau2 / v, a, t0=1.0)
        return (d - hw, d + hw)

    def status(self) -> dict[str, Any]:
        lo, hi = self.interval()
        return {"detector": "msprt", "n": [self.a.n, self.b.n], "e_value": round(self.e_value, 6),
                "p_value": round(self.p_value, 6), "interval": [round(lo, 6), round(hi, 6)],
                "rejected": self.rejected}
